"""splay.deploy.log_limits: the daemon's output limits, line by line, on a clock the test moves."""
from splay.deploy.log_limits import MARKER_STREAM, LogLimiter, dropped_in_marker


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def feed(limiter, instance_id, job_ref, count, size=100, name=None):
    """Offer ``count`` lines; returns (admitted, markers)."""
    admitted, markers = 0, []
    for _ in range(count):
        ok, more = limiter.admit(instance_id, instance_id if name is None else name, job_ref, size)
        admitted += ok
        markers += more
    return admitted, markers


def test_the_node_total_cuts_a_node_and_the_end_marker_counts_every_dropped_line():
    limiter = LogLimiter(node_bytes=1000)
    admitted, markers = feed(limiter, 1, "j", 25)
    assert admitted == 10
    assert markers == ["[splay] node 1: log limit 1000 bytes per node reached: its further lines "
                       "are dropped and counted"]
    end = limiter.end(1)
    assert end == "[splay] node 1: 15 lines dropped (log limit 1000 bytes per node)"
    assert dropped_in_marker(MARKER_STREAM, end) == 15
    assert limiter.end(1) is None
    assert feed(limiter, 2, "j", 3)[0] == 3                 # another node has its own total


def test_the_job_total_is_shared_by_the_nodes_of_a_job_only():
    limiter = LogLimiter(job_bytes=1 << 20)
    assert feed(limiter, 1, "a", 6000, size=100)[0] == 6000
    assert feed(limiter, 2, "a", 6000, size=100)[0] == (1 << 20) // 100 - 6000
    assert "per job on this daemon" in limiter.end(2)
    assert feed(limiter, 3, "b", 10)[0] == 10


def test_the_node_rate_drops_a_burst_and_reports_it_when_lines_get_through_again():
    clock = Clock()
    limiter = LogLimiter(node_rate=1000, clock=clock)      # bucket of 4 s: 4000 bytes
    assert feed(limiter, 7, "j", 50, name=3)[0] == 40
    clock.now += 1.0                                         # 1000 bytes more: 10 lines
    admitted, markers = feed(limiter, 7, "j", 10, name=3)
    assert admitted == 10
    assert markers == ["[splay] node 3: 10 lines dropped (log rate limit 1000 bytes/s per node)"]
    assert limiter.end(7) is None


def test_the_job_rate_is_shared_by_the_nodes_of_a_job():
    clock = Clock()
    limiter = LogLimiter(job_rate=1000, clock=clock)
    assert feed(limiter, 1, "j", 30)[0] == 30
    assert feed(limiter, 2, "j", 30)[0] == 10
    assert limiter.end(2) == "[splay] node 2: 20 lines dropped (log rate limit 1000 bytes/s per " \
                             "job on this daemon)"
    assert feed(limiter, 3, "other", 30)[0] == 30


def test_other_lines_are_not_markers():
    assert dropped_in_marker("stdout", "[splay] node 1: 5 lines dropped (log limit x)") == 0
    assert dropped_in_marker(MARKER_STREAM, "[splay] node 1: log limit x reached") == 0
