"""splay.launch.membership_file: a churn replay's nodes file costs O(1) per join or leave.

The cost is checked through what can be observed, never through timing: how many times the file
was written, and how many bytes the host process of a ``--sim`` replay wrote in all (Linux's
``/proc/self/io``). Rewriting the whole list at each of 2,000 joins wrote about 60 MB; the
bound below is a thirtieth of that.
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

from splay.launch.membership_file import MembershipFile
from splay.node import Node

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
ENV.pop("SPLAY_JOB", None)


def test_many_changes_of_a_long_list_are_written_a_few_times_and_the_last_list_exactly(tmp_path):
    nodes = [Node("127.0.0.1", 20000 + i) for i in range(20000)]
    membership = MembershipFile(tmp_path / "nodes.json")
    alive = []
    for node in nodes[:1000]:
        alive.append(node)
        membership.changed(lambda: list(alive))
    # The first change is written at once; the next ones wait while rewriting a list of this
    # size would take more than WRITE_SHARE of the time (a loaded machine may let a few through).
    assert 1 <= membership.writes <= 20
    membership.flush()
    assert json.loads((tmp_path / "nodes.json").read_text()) == [
        {"ip": n.ip, "port": n.port} for n in nodes[:1000]]
    writes = membership.writes
    membership.flush()                       # nothing waits: nothing written
    assert membership.writes == writes and membership.next_write() is None


def test_a_short_list_is_written_at_every_change(tmp_path):
    membership = MembershipFile(tmp_path / "nodes.json")
    for count in range(1, 4):
        membership.changed(lambda: [Node("127.0.0.1", 20000 + i) for i in range(count)])
        if membership.next_write() is not None:      # the machine paused right after a rewrite
            membership.flush()
        assert len(json.loads((tmp_path / "nodes.json").read_text())) == count


# Every node checks, when it starts, that job.nodes() holds the nodes up at that instant (the
# joins are 1 ms apart on the virtual clock); the last one prints how many bytes its process wrote.
APP = """
    import splay
    from splay import events

    job = splay.job
    N = {n}

    def main():
        seen = len(job.nodes())
        if seen != job.position + 1:
            print("wrong view", job.position, seen)
        if job.position == N - 1:
            with open("/proc/self/io") as f:
                wchar = dict(line.split(": ") for line in f.read().splitlines())["wchar"]
            print("last node sees", seen, "host wrote", int(wchar))

    events.run(main)
"""


def test_a_sim_replay_of_2000_joins_writes_linearly_and_every_node_sees_the_joins_before_it(tmp_path):
    n = 2000
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP.format(n=n)))
    trace = tmp_path / "joins.txt"
    trace.write_text("".join(f"{i / 1000:.3f}\n" for i in range(n)))
    done = subprocess.run([sys.executable, "-m", "splay.cli", "run", str(app), "--churn", str(trace),
                           "--sim"], env=ENV, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrong view" not in done.stdout
    last = [line for line in done.stdout.splitlines() if "last node sees" in line]
    assert len(last) == 1, done.stdout[-2000:]
    fields = last[0].split()
    assert int(fields[fields.index("sees") + 1]) == n
    # The host's control record of each join (~120 bytes) and a few copies of the file: linear.
    assert int(fields[-1]) < 1000 * n
