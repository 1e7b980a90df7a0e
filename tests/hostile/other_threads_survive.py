"""A job whose worker thread tries something forbidden: that thread gets the error, the main one goes on."""
import threading

outcome = {}


def worker():
    try:
        open("/etc/passwd")
    except Exception as error:      # the refusal arrives in this thread only
        outcome["worker"] = f"{type(error).__name__}: {error}"


thread = threading.Thread(target=worker)
thread.start()
thread.join()
print("worker saw:", outcome["worker"])
total = sum(range(1000))
print("main thread still running, computed", total)
