"""Inside a simulation, real blocking calls raise a clear error; time.time reads virtual time."""

import re
import socket
import subprocess
import time

import pytest

from splay import events, misc
from splay.sim import blocking, clock


def _run_sim(main):
    with clock.virtual_time(), blocking.guard():
        events.run(main)


@pytest.mark.parametrize("call, expected", [
    (lambda: time.sleep(1), r"time\.sleep\(\) would block .* use events\.sleep\(\)"),
    (lambda: socket.create_connection(("127.0.0.1", 9)), r"socket\.create_connection\(\) .* splay\.socket\.tcp\(\)"),
    (lambda: socket.socket().connect(("127.0.0.1", 9)), r"connect\(\) would block .* splay\.socket / splay\.net"),
    (lambda: socket.socket(type=socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 9)), r"sendto\(\) .* splay\.socket\.udp\(\)"),
    (lambda: subprocess.run(["true"]), r"subprocess\.run\(\) would block"),
])
def test_a_real_blocking_call_names_itself_and_the_alternative(call, expected):
    errors = []

    def main():
        try:
            call()
        except blocking.SimulationError as e:
            errors.append(str(e))

    _run_sim(main)
    assert len(errors) == 1
    assert re.search(expected, errors[0]), errors[0]


def test_time_time_and_monotonic_read_the_virtual_clock():
    seen = []

    def main():
        events.sleep(90)
        seen.append((time.time(), time.monotonic(), misc.time()))

    _run_sim(main)
    assert seen == [(90.0, 90.0, 90.0)]


def test_everything_is_restored_after_the_simulation():
    _run_sim(lambda: events.sleep(1))
    assert abs(time.time() - clock._REAL_TIME()) < 1
    start = time.monotonic()
    time.sleep(0.01)
    assert time.monotonic() > start
    assert subprocess.run(["true"]).returncode == 0
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.close()
