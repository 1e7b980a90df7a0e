"""splay.pacing.wait_after: periodic work spaced so that it takes at most its share of the time."""
import pytest

from splay.pacing import wait_after


def test_cheap_work_waits_its_interval():
    assert wait_after(0.001, 0.05, at_least=1.0) == 1.0


def test_costly_work_waits_until_it_is_its_share_of_the_time():
    took = 3.0
    wait = wait_after(took, 0.05, at_least=1.0)
    assert took / (took + wait) == pytest.approx(0.05)
    assert wait_after(0.2, 0.25) == pytest.approx(0.6)
