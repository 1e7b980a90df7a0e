"""events.lock, events.semaphore: exclusion, FIFO hand-over, timeouts, and the secure modes."""
import pytest

from splay import events


def run_collect(main):
    out = []
    events.run(lambda: main(out))
    return out


def test_lock_excludes_and_hands_over_in_arrival_order():
    def main(out):
        lk = events.lock()

        def worker(i):
            lk.lock()
            out.append(("in", i))
            events.sleep(0.002)
            out.append(("out", i))
            lk.unlock()
        events.thread([lambda i=i: worker(i) for i in range(4)])
    out = run_collect(main)
    assert out == [x for i in range(4) for x in (("in", i), ("out", i))]


def test_lock_as_context_manager():
    def main(out):
        lk = events.lock()
        with lk:
            out.append(lk.locked())
        out.append(lk.locked())
    assert run_collect(main) == [True, False]


def test_lock_timeout_returns_false_and_leaves_no_trace():
    def main(out):
        lk = events.lock()
        lk.lock()
        events.thread(lambda: out.append(lk.lock(0.01)))
        events.sleep(0.05)
        lk.unlock()
        out.append(lk.locked())
        out.append(lk.lock(0))
    assert run_collect(main) == [False, False, True]


def test_unlock_of_unlocked_lock_raises():
    def main(out):
        with pytest.raises(RuntimeError, match="not locked"):
            events.lock().unlock()
        out.append("ok")
    assert run_collect(main) == ["ok"]


def test_semaphore_lets_size_threads_in():
    def main(out):
        sem = events.semaphore(2)
        inside = []

        def worker(i):
            sem.lock()
            inside.append(i)
            out.append(len(inside))
            events.sleep(0.005)
            inside.remove(i)
            sem.unlock()
        events.thread([lambda i=i: worker(i) for i in range(5)])
    out = run_collect(main)
    assert len(out) == 5 and max(out) == 2


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5])
def test_semaphore_rejects_bad_size(bad):
    with pytest.raises(ValueError, match="size"):
        events.semaphore(bad)


def test_secure_mode_is_validated():
    with pytest.raises(ValueError, match="secure"):
        events.lock(secure=3)


def _holder_dies(secure, how):
    """A thread takes the lock and dies (error / normal end / kill); can another thread get it?"""
    def main(out):
        lk = events.lock(secure)

        def holder():
            lk.lock()
            if how == "error":
                raise RuntimeError("holder fails on purpose")
            if how == "kill":
                events.sleep(10)
        t = events.thread(holder)
        events.yield_()
        if how == "kill":
            events.kill(t)
        events.sleep(0.01)
        out.append(lk.lock(0.05))
    return run_collect(main)[0]


@pytest.mark.parametrize("secure,how,released", [
    (1, "error", True), (1, "normal", False), (1, "kill", False),
    (2, "error", True), (2, "normal", True), (2, "kill", True),
    (False, "error", False), (False, "normal", False), (False, "kill", False),
])
def test_secure_release_on_holder_death(secure, how, released, capfd):
    assert _holder_dies(secure, how) is released


def test_killed_waiter_does_not_get_the_lock():
    def main(out):
        lk = events.lock()
        lk.lock()
        w = events.thread(lambda: (lk.lock(), out.append("killed waiter got it")))
        events.thread(lambda: (lk.lock(), out.append("second waiter got it"), lk.unlock()))
        events.yield_()
        events.kill(w)
        lk.unlock()
        events.sleep(0.01)
        out.append(lk.locked())
    assert run_collect(main) == ["second waiter got it", False]
