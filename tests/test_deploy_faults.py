"""``splay submit --faults FILE`` on a real local testbed: the daemons pause, kill and restart
their instances, the nodes partition and skew themselves, the controller logs every action."""
import re

import pytest

from test_deploy_support import splay_cli, start_bed, write_app

# Times are real seconds since the timeline's time 0 (its epoch, on this machine's clock).
APP = """
import time
from splay.base import *
from splay import rpc
from splay.faults.clock import real_time

EPOCH = job.settings["faults"]["epoch"]

def since():
    return real_time() - EPOCH

ticks = 0

def tick():
    global ticks
    ticks += 1
    return ticks

def main():
    me = job.position
    nodes = job.nodes()
    print("start %d %.3f" % (me, since()), flush=True)
    if me == 0:                                   # paused from 2.5s to 3.5s
        rpc.server(job.me)
        events.sleep(max(0.5, 5.5 - since()))
    elif me == 1:                                 # calls node 0, reaches node 2; skewed +500ms
        events.sleep(max(0.0, 0.4 - since()))
        while since() < 2.2:                      # a loaded machine starts nodes 0 and 2 late:
            s = socket.connect(nodes[2])          # begin once both answer
            if s is not None:
                s.close()
                if rpc.call(nodes[0], "tick", 0.25) is not None:
                    break
            events.sleep(0.05)
        while since() < 4.7:
            answer = rpc.call(nodes[0], "tick", 0.25)
            s = socket.connect(nodes[2])
            if s is not None:
                s.close()
            print("call %.3f %s reach %d" % (since(), answer, s is not None), flush=True)
            events.sleep(0.1)
        print("skew %.3f" % (misc.time() - real_time()), flush=True)
    elif me == 2:
        srv = socket.bind(job.me)
        def serve():
            while True:
                c = srv.accept()
                if c is None:
                    break
                c.close()
        events.thread(serve)
        events.sleep(max(0.5, 5.1 - since()))
    else:                                         # 3: killed at 2.5s, back at 3.5s
        events.sleep(max(0.5, 5.0 - since()))
    events.exit()

events.run(main)
"""

# Late enough (2.5 s) that the nodes run before, even on a loaded machine.
FAULTS = """\
pause 0 at 2.5s for 1s
partition 1|2 from 2.5s to 3.5s
skew 1 +500ms from 0s
kill 3 at 2.5s for 1s
"""


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = start_bed(tmp_path_factory, "faults", 2)
    yield bed
    bed.down()


def _lines(log, word):
    return [line["line"].split()[1:] for line in log if line["line"].startswith(word + " ")]


def test_pause_kill_restart_partition_and_skew_on_a_testbed(bed, tmp_path):
    app = write_app(tmp_path, "app.py", APP)
    (tmp_path / "faults.txt").write_text(FAULTS)
    out = splay_cli(bed, "submit", app, "-n", "4", "--factor", "1", "--faults",
                    tmp_path / "faults.txt", "--wait", "--json")
    job_id = int(re.search(r"job (\d+)", out.stderr).group(1))
    client = bed.client()
    info = client.get(f"/api/jobs/{job_id}")
    log = client.get(f"/api/jobs/{job_id}/logs?limit=100000")["lines"]
    text = "\n".join(line["line"] for line in log)
    assert out.returncode == 0 and info["state"] == "ENDED", (out.stderr, info["reason"], text)
    calls = [(float(t), answer, reach == "1") for t, answer, _, reach in _lines(log, "call")]
    assert all(a != "None" for t, a, _ in calls if t < 2.4), calls
    assert all(a == "None" for t, a, _ in calls if 2.8 < t < 3.25), calls
    before = [int(a) for t, a, _ in calls if t < 2.4]
    after = [int(a) for t, a, _ in calls if t > 4.1 and a != "None"]
    assert before and after and min(after) > max(before), calls        # resumed with its state
    assert all(r for t, _, r in calls if t < 2.4 or t > 3.9), calls
    assert not any(r for t, _, r in calls if 2.65 < t < 3.35), calls
    assert [round(float(s), 1) for (s,) in _lines(log, "skew")] == [0.5]
    starts = sorted(float(t) for me, t in _lines(log, "start") if me == "3")
    assert len(starts) == 2 and starts[0] < 2.5 and 3.45 < starts[1] < 4.5, starts
    for action in ("pause 0 at 2.5s for 1s: begins", "partition 1|2 from 2.5s to 3.5s: ends",
                   "kill 3 at 2.5s for 1s: begins", "kill 3 at 2.5s for 1s: restart"):
        assert re.search(rf"fault: {re.escape(action)} at \d+\.\d{{3}} \(scheduled", text), action
    # the run's data (the live page, reports) shows them as events
    events = client.get(f"/api/jobs/{job_id}/rundata")["events"]
    faults = [e["detail"] for e in events if e["kind"] == "fault"]
    assert "pause 0 at 2.5s for 1s: begins" in faults and "kill 3 at 2.5s for 1s: restart" in faults


def test_a_bad_fault_file_is_refused_before_submitting(bed, tmp_path):
    app = write_app(tmp_path, "app.py", "print('ran')\n")
    (tmp_path / "faults.txt").write_text("pause 0 at 1s for 1s\npause 7 at 2s\n")
    out = splay_cli(bed, "submit", app, "-n", "4", "--faults", tmp_path / "faults.txt")
    assert out.returncode != 0
    assert "faults.txt:2:1: 'pause 7 at 2s' names node 7, but the run has 4 node(s)" in out.stderr
    # the API refuses it too, naming the line
    from splay.deploy.cli import CommandError
    with pytest.raises(CommandError) as error:
        bed.client().post("/api/jobs", {"code": "print(1)", "nodes": 2, "settings": {
            "faults": {"text": "pause 0 at 1s\nskew 1 5s from 0s\n", "name": "f"}}})
    assert "f:2:8: expected the skew with its sign" in str(error.value)
