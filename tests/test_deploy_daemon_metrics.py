"""The daemon's metrics relay over real pipes: batches become ``metrics`` messages, a node sending
garbage is cut off, a full buffer drops (and counts) the oldest samples, a node's last samples are
read before its end is reported."""
import asyncio
import json
import logging
import os

from splay.deploy.daemon_metrics import SAMPLES_PER_MESSAGE, MetricsRelay


def batch(samples, dropped=0):
    return json.dumps({"samples": samples, "dropped": dropped}).encode() + b"\n"


def run(coroutine):
    return asyncio.run(coroutine)


async def read_until(relay, fd, predicate):
    """Let the loop read the pipes until ``predicate()``."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the relay did not read what was written")


def test_batches_become_messages_and_the_last_ones_come_before_the_end():
    async def scenario():
        relay = MetricsRelay()
        fd = relay.open(7)
        os.write(fd, batch([{"ts": 1.0, "node": 0}, {"ts": 2.0, "node": 0}]))
        os.write(fd, batch([{"ts": 3.0, "node": 0}], dropped=4))
        os.close(fd)                        # the node ended
        await relay.ended(7)
        assert relay.pipes == {}
        [message] = relay.messages()
        assert message["type"] == "metrics"
        assert [s["ts"] for _, s in message["samples"]] == [1.0, 2.0, 3.0]
        assert {i for i, _ in message["samples"]} == {7}
        assert message["dropped"] == {"7": 4}
        assert relay.messages() == []       # nothing new
    run(scenario())


def test_a_node_sending_garbage_is_cut_off_with_the_reason_logged(caplog):
    async def scenario():
        relay = MetricsRelay()
        fd = relay.open(3)
        os.write(fd, b"this is not a batch\n")
        await read_until(relay, fd, lambda: relay.cut_off == 1)
        assert relay.pipes == {}
        try:
            os.write(fd, batch([]))
            raise AssertionError("the cut-off pipe still accepts data")
        except BrokenPipeError:
            pass
        os.close(fd)
        other = relay.open(4)               # the other nodes go on
        os.write(other, batch([{"ts": 1.0}]))
        await read_until(relay, other, lambda: len(relay.samples) == 1)
        os.close(other)
        [message] = relay.messages()        # the controller hears why
        assert message["cut"] == {"3": "it sent a metrics line that is not JSON "
                                        "(b'this is not a batch')"}
        assert [i for i, _ in message["samples"]] == [4]
    with caplog.at_level(logging.WARNING, "splay.daemon"):
        run(scenario())
    assert "instance 3: metrics cut off: it sent a metrics line that is not JSON" in caplog.text


def test_a_line_without_end_longer_than_the_limit_is_cut_off():
    async def scenario():
        relay = MetricsRelay()
        fd = relay.open(5)
        os.set_blocking(fd, False)
        chunk = b"x" * 65536
        written = 0
        while relay.cut_off == 0 and written < 4 * 2 ** 20:
            try:
                written += os.write(fd, chunk)
            except BlockingIOError:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0)
        await read_until(relay, fd, lambda: relay.cut_off == 1)
        os.close(fd)
    run(scenario())


def test_a_full_buffer_drops_the_oldest_samples_and_counts_them():
    async def scenario():
        relay = MetricsRelay(capacity=3)
        fd = relay.open(1)
        os.write(fd, batch([{"ts": float(i)} for i in range(5)]))
        os.close(fd)
        await relay.ended(1)
        [message] = relay.messages()
        assert [s["ts"] for _, s in message["samples"]] == [2.0, 3.0, 4.0]
        assert message["dropped"] == {"1": 2}
    run(scenario())


def test_a_long_backlog_goes_in_several_messages():
    async def scenario():
        relay = MetricsRelay()
        fd = relay.open(2)
        for start in range(0, 2500, 500):
            os.write(fd, batch([{"ts": float(i)} for i in range(start, start + 500)]))
            await read_until(relay, fd, lambda: len(relay.samples) == start + 500)
        os.close(fd)
        await relay.ended(2)
        messages = relay.messages()
        assert [len(m["samples"]) for m in messages] == [SAMPLES_PER_MESSAGE] * 2 + [500]
        assert [s["ts"] for m in messages for _, s in m["samples"]] == \
            [float(i) for i in range(2500)]
    run(scenario())
