"""The sampler thread of a node process (splay.observatory.sampler): what it writes into the
metrics pipe, read here from the pipe's other end as the launcher's collector reads it."""
import json
import os
import threading

import pytest

from splay.observatory import sampler as sampling
from splayc import hub


def read_all(fd, into):
    with os.fdopen(fd, "rb") as f:
        into.extend(f.read().splitlines())


def test_the_samples_of_many_nodes_go_in_lines_that_fit_the_buffer():
    # 2,000 nodes in one process (--in-process, --sim): one line for all of them would be larger
    # than the writer's buffer, and was dropped whole at every sample, the last one included.
    read_end, write_end = os.pipe()
    lines = []
    reader = threading.Thread(target=read_all, args=(read_end, lines))
    reader.start()
    nodes = [(i, None) for i in range(2000)]
    s = sampling.Sampler(write_end, 60.0, lambda: nodes, hub.hub())
    s.stop(timeout=30)            # never started: stop() ships the last sample
    os.close(write_end)
    reader.join(30)
    batches = [json.loads(line) for line in lines]
    assert len(batches) > 1
    assert all(len(line) < sampling.LINE_BYTES + 4096 for line in lines)
    assert sorted(sample["node"] for b in batches for sample in b["samples"]) == list(range(2000))
    assert s.dropped == 0 and all(b["dropped"] == 0 for b in batches)


def test_samples_the_reader_cannot_take_are_counted_as_dropped():
    read_end, write_end = os.pipe()           # nobody reads: the pipe and the buffer fill up
    nodes = [(i, None) for i in range(2000)]
    s = sampling.Sampler(write_end, 60.0, lambda: nodes, hub.hub())
    s.writer.capacity = sampling.LINE_BYTES + 8192   # a small buffer (the pipe holds 64 KiB)
    s.ship()
    assert 0 < s.dropped < 2000                # what fit was kept, the rest counted
    lines = []
    reader = threading.Thread(target=read_all, args=(read_end, lines))
    reader.start()
    s.stop(timeout=30)                         # the last sample waits for the reader
    os.close(write_end)
    reader.join(30)
    batches = [json.loads(line) for line in lines]
    last = [sample["node"] for b in batches for sample in b["samples"]][-2000:]
    assert last == list(range(2000))           # the whole last sample arrived
    assert batches[-1]["dropped"] == s.dropped


def test_a_costly_round_spaces_the_next_so_sampling_takes_a_small_share():
    # 100,000 simulated nodes take seconds per round: sampling every second would hold the
    # interpreter most of the time the nodes need it.
    assert sampling.next_wait(1.0, 0.002) == 1.0
    assert sampling.next_wait(1.0, 3.0) == 3.0 / sampling.SAMPLING_SHARE - 3.0
    took = 3.0
    assert took / (took + sampling.next_wait(1.0, took)) == pytest.approx(sampling.SAMPLING_SHARE)


def test_one_read_of_the_process_usage_serves_every_node_of_a_round():
    usage = (4096 * 10, 2.5)
    s = sampling.sample(3, None, 7, share=10, usage=usage)
    assert (s["node"], s["threads"], s["rss"], s["cpu"]) == (3, 7, 4096, 0.25)
