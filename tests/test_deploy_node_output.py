"""Node output in files that outlive the daemon (splay.deploy.node_output): a daemon killed while
its nodes print loses none of their lines, and reports none twice."""
import os
import signal

import pytest

from splay.deploy.node_output import NodeOutputs, OutputFile, output_directory, LINE_LIMIT, \
    PUNCH_EVERY
from splay.deploy.report_spool import ReportSpool
from test_deploy_support import job_processes, splay_cli, start_bed, wait_for


# -- the files, real ones ---------------------------------------------------------------------
def test_lines_are_read_as_they_are_appended_with_their_end_offsets(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"")
    output = OutputFile(str(path), 7, "stdout")
    with open(path, "ab", buffering=0) as node:
        node.write(b"one\ntw")
        assert output.read_lines() == [(b"one", 4)]
        node.write(b"o\nthree")
        assert output.read_lines() == [(b"two", 8)]
        assert output.read_lines(final=True) == [(b"three", 13)]   # the life ended mid-line
    output.remove()
    assert not path.exists()


def test_a_line_longer_than_the_limit_comes_in_pieces(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * (LINE_LIMIT + 10) + b"\n")
    output = OutputFile(str(path), 1, "stdout")
    pieces = output.read_lines() + output.read_lines()    # at most 1 MiB is read per poll
    assert [(len(line), end) for line, end in pieces] == [(LINE_LIMIT, LINE_LIMIT),
                                                          (10, LINE_LIMIT + 11)]


def test_spooled_lines_give_their_space_back(tmp_path):
    path = tmp_path / "f"
    path.write_bytes((b"y" * 99 + b"\n") * (3 * PUNCH_EVERY // 100))
    output = OutputFile(str(path), 1, "stdout")
    lines = output.read_lines(final=True)
    assert len(lines) == 3 * PUNCH_EVERY // 100
    before = os.stat(path).st_blocks
    output.now_spooled(lines[-1][1])
    after = os.stat(path)
    assert after.st_size == len(path.read_bytes())       # the offsets stay valid
    assert after.st_blocks < before / 2, (before, after.st_blocks)


def test_a_restarted_daemon_reads_on_from_the_spooled_offset(tmp_path):
    spool = ReportSpool(str(tmp_path / "spool"))
    outputs = NodeOutputs(str(tmp_path / "out"), spool)
    write_fd, output = outputs.create("job1", 3, "stdout")
    os.write(write_fd, b"a\nb\nc\n")
    os.close(write_fd)
    [(line, end), *rest] = output.read_lines()
    spool.append({"type": "log", "lines": [[3, 0.0, "stdout", "a"]], "offsets": {output.key: end}})
    # Killed now (b and c read but not spooled); compacted first, so the offset is in meta.json.
    spool.close()
    again = ReportSpool(str(tmp_path / "spool"))
    [left] = NodeOutputs(str(tmp_path / "out"), again).left_behind(again.offsets)
    assert (left.instance_id, left.stream) == (3, "stdout")
    assert [line for line, _ in left.read_lines(final=True)] == [b"b", b"c"]


def test_a_file_of_an_ended_life_goes_once_its_lines_are_spooled(tmp_path):
    spool = ReportSpool(str(tmp_path / "spool"))
    outputs = NodeOutputs(str(tmp_path / "out"), spool)
    write_fd, output = outputs.create("job1", 3, "stderr")
    os.write(write_fd, b"last words\n")
    os.close(write_fd)
    [(_, end)] = output.read_lines(final=True)
    output.queued += 1                      # handed to the daemon's line queue
    outputs.done(output)
    assert os.path.exists(output.path)      # not spooled yet
    spool.append({"type": "log", "lines": [], "offsets": {output.key: end}})
    outputs.spooled([(output, end)])
    assert not os.path.exists(output.path) and output.key not in spool.offsets


def test_foreign_files_in_the_output_directory_are_removed(tmp_path):
    outputs = NodeOutputs(str(tmp_path / "out"), ReportSpool(str(tmp_path / "spool")))
    (tmp_path / "out" / "stray").write_text("x")
    assert outputs.left_behind({}) == []
    assert os.listdir(tmp_path / "out") == []


# -- a real daemon, killed while its nodes print ------------------------------------------------
# Prints numbered lines every 10 ms and, after each, notes how many it printed in a file outside
# the testbed (the truth the stored lines are checked against).
PRINTER_APP = '''
import itertools, json, os, time
job = json.loads(os.environ["SPLAY_JOB"])
count = os.path.join({out!r}, str(job["position"]))
for i in itertools.count():
    print(f"n {{job['position']}} {{i}}", flush=True)
    with open(count + ".tmp", "w") as f:
        f.write(str(i + 1))
    os.replace(count + ".tmp", count)
    time.sleep(0.01)
'''


@pytest.fixture
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "nodeoutput", 1,
                    controller_args=["--daemon-timeout", "60", "--ping-interval", "1"])
    yield bed
    bed.down()


def stored_numbers(bed, job_id):
    numbers = {}
    for line in splay_cli(bed, "logs", job_id, "--raw").stdout.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "n":
            numbers.setdefault(int(words[1]), []).append(int(words[2]))
    return numbers


def test_a_daemon_killed_while_its_nodes_print_loses_no_line(bed, tmp_path):
    out = tmp_path / "counts"
    out.mkdir()
    job = bed.client().post("/api/jobs", {"code": PRINTER_APP.format(out=str(out)), "nodes": 3})
    wait_for(lambda: all(len(v) > 20 for v in stored_numbers(bed, job["id"]).values())
             and len(stored_numbers(bed, job["id"])) == 3, 60, "the first lines")
    directory = output_directory(bed.path("daemon0"))
    assert len(os.listdir(directory)) == 6                # stdout and stderr of 3 nodes
    # Stopped, the daemon reads nothing while its nodes go on printing; then it is killed, and
    # its nodes with it: what they printed meanwhile is only in their output files.
    pid = bed.state["daemon_pids"]["0"]
    os.kill(pid, signal.SIGSTOP)

    def counts():
        return {int(p): int((out / p).read_text()) for p in os.listdir(out) if p.isdigit()}
    at_stop = counts()                   # the daemon read at most these
    wait_for(lambda: all(n > at_stop.get(p, 0) + 100 for p, n in counts().items()), 30,
             "lines printed while the daemon is stopped")
    bed.stop_daemon(0, signal.SIGKILL)
    wait_for(lambda: job_processes(job["ref"]) == [], 30, "the nodes to die with their daemon")
    bed.start_daemon(0)
    bed.wait_daemons(1, timeout=60)
    printed = counts()

    def complete():
        numbers = stored_numbers(bed, job["id"])
        return numbers if all(len(numbers.get(p, ())) >= n for p, n in printed.items()) else None
    numbers = wait_for(complete, 30, "every printed line in `splay logs`")
    for position, seen in numbers.items():
        # once and in order; at most one more than counted (killed between print and count)
        assert seen == list(range(len(seen))), position
        assert printed[position] <= len(seen) <= printed[position] + 1, (position, len(seen))
    states = {i["state"] for i in bed.client().get(f"/api/jobs/{job['id']}")["instances"]}
    assert states == {"LOST"}
    wait_for(lambda: os.listdir(directory) == [], 10, "the dead nodes' output files to go")
    bed.down()
    assert not os.path.exists(directory)                  # a clean stop leaves nothing
