"""Helpers the tests share for running code under ``events.run`` and waiting inside it."""
import time

from splay import events


def run(main, *args, catch=Exception):
    """``events.run(main(*args))``: returns ``main``'s result and raises again what it raised
    (``events.run`` itself only logs a thread's exception). ``catch=BaseException`` also hands
    back the exceptions that are not errors (a kill, an exit)."""
    out = {}

    def body():
        try:
            out["result"] = main(*args)
        except catch as e:              # handed to the test
            out["error"] = e

    events.run(body)
    if "error" in out:
        raise out["error"]
    return out.get("result")


def run_main(main):
    """``run(main)`` that hands back every exception, BaseException included."""
    return run(main, catch=BaseException)


def wait_until(predicate, timeout=10.0):
    """Poll a condition inside a thread; its last value (a generous deadline: the machine may
    be loaded)."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        events.sleep(0.01)
    return predicate()


def restored_settings(module):
    """The body of a fixture that yields ``module.settings`` and restores it after the test."""
    saved = dict(module.settings)
    yield module.settings
    module.settings.clear()
    module.settings.update(saved)
