"""The examples of the manual's ``splay.events`` section, translated to Python, with their output."""
from splay import events


def test_run_hello_world(capsys):
    events.run(lambda: print("hello world"))
    assert capsys.readouterr().out == "hello world\n"


def test_thread_examples(capsys):
    def hello():
        print("hello")

    def my_print(s):
        print(s)

    def main():
        # an anonymous function to give a parameter to the thread's function
        events.thread(lambda: my_print("test"))
        # a list with one function and one anonymous function
        events.thread([hello, lambda: print("SPLAY")])
    events.run(main)
    assert capsys.readouterr().out == "test\nhello\nSPLAY\n"


def test_periodic_example(capsys):
    def slow(a):
        print("slow", a)
        events.sleep(5 * 0.01)

    def main():
        t = events.periodic(0.01, lambda: print("hello"))
        p1 = events.periodic(0.03, lambda: slow("one"))
        p2 = events.periodic(0.03, lambda: slow("two"), True)
        events.sleep(0.2)
        events.kill([t, p1, p2])
        events.exit()
    events.run(main)
    out = capsys.readouterr().out.splitlines()
    assert out.count("hello") >= 10
    # "one" waits for its previous call (50 ms) to end; "two" is forced every 30 ms
    assert out.count("slow two") > out.count("slow one") >= 2


def test_fire_wait_examples(capsys):
    def main():
        # 1: fire() without parameters: the waiter prints nothing (an empty tuple)
        events.thread(lambda: print(*events.wait("ev")))
        print(events.fire("ev"))
        events.sleep(0.01)
        # 2: fire() with one parameter
        events.thread(lambda: print(*events.wait("ev")))
        print(events.fire("ev", "hello"))
        events.sleep(0.01)
        # 3: two fires: the second fails, the slot is taken until the waiter gets the first
        events.thread(lambda: print(*events.wait("ev"), sep=", "))
        print(events.fire("ev", "hello", "world"))
        print(events.fire("ev", "no effect"))
    events.run(main)
    assert capsys.readouterr().out.splitlines() == [
        "True", "", "True", "hello", "True", "False", "hello, world"]


def test_wait_timeout_examples(capsys):
    def main():
        # 1: without parameters, not timed out
        events.thread(lambda: print(*events.wait("ev", 2)))
        events.fire("ev")
        events.sleep(0.01)
        # 1.1: timed out
        events.thread(lambda: print(*events.wait("ev", 0.01), sep=", "))
        events.sleep(0.05)
        # 2: with parameters, not timed out
        events.thread(lambda: print(*events.wait("ev", 2), sep=", "))
        events.fire("ev", "hello", "world")
    events.run(main)
    assert capsys.readouterr().out.splitlines() == ["True", "False, timeout", "True, hello, world"]


def test_yield_example(capsys):
    c = [1]

    def hello_good():
        d = c[0]
        c[0] += 1
        n = 0
        while events.yield_():
            print("world", d)
            n += 1
            if n == 2:
                break

    events.run([hello_good, hello_good, hello_good])
    assert capsys.readouterr().out.splitlines() == [
        "world 1", "world 2", "world 3", "world 1", "world 2", "world 3"]


def test_lock_example(capsys):
    lk = events.lock()

    def test():
        lk.lock()
        print("in")
        events.sleep(0.005)
        print("out")
        lk.unlock()

    events.run([test, test, test])
    assert capsys.readouterr().out.splitlines() == ["in", "out"] * 3


def test_semaphore_example(capsys):
    sem = events.semaphore(2)
    inside = [0]
    most = [0]

    def test():
        sem.lock()
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        print("in")
        events.sleep(0.005)
        inside[0] -= 1
        print("out")
        sem.unlock()

    events.run([test] * 5)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["in", "in"] and lines.count("in") == 5 and most[0] == 2
