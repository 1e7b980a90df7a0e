"""A daemon's side of a churn replay: one instance started and stopped as its trace says.

For a churn job (``splay submit --churn TRACE``) the controller sends, with the start message,
each instance's trace times (up, down, up, ...) and the trace's time 0 on this daemon's clock. The
daemon replays them itself, so that no network round trip lies between the schedule and the action:

- for each up interval the instance gets a fresh process, created :data:`PRESTART` seconds ahead;
  it loads the library and waits on its stdin (``python -m splay.launch.churn_replay``, the gate
  that ``splay run --churn`` uses) until the up time, when the daemon writes the go line;
- at the down time its process group gets SIGTERM, and SIGKILL after the grace period;
- each action is reported as a ``churn`` message ``{change: up | down, at, scheduled}`` (both on
  this daemon's clock, so the lag carries no clock-offset error); a process that ends while the
  trace has it up is reported as ``crashed`` and comes back at its next up time;
- after its last interval the instance ends for good (an ``exited`` message): KILLED after a last
  down, with its process's own status when the trace leaves it up and it ends by itself.

A stop from the controller (job killed) cancels the replay: the current process is stopped and
the instance ends KILLED.
"""
import asyncio
import signal

from splay.launch.churn_replay import GO, PRESTART

#: What the instance is called in the reason of its end after the last down of its trace.
LAST_DOWN = "down at the end of its churn trace"


def up_intervals(times):
    """``[(up, down or None), ...]`` from a trace line's times (up, down, up, ...)."""
    return [(times[k], times[k + 1] if k + 1 < len(times) else None)
            for k in range(0, len(times), 2)]


class Life:
    """One process of a churned instance, from its creation to its exit status."""

    def __init__(self, process, ended):
        self.process = process
        self.ended = ended          # a Task: the output is forwarded, then the exit status

    @property
    def pid(self):
        """The process id."""
        return self.process.pid


class InstanceChurn:
    """Replays one instance's up intervals (see the module docstring); ``task`` runs it."""

    def __init__(self, manager, instance, spawn_life, times, t0, speed, grace):
        self.manager = manager
        self.instance = instance
        self.spawn_life = spawn_life      # async () -> Life: a fresh waiting process
        self.intervals = up_intervals([float(t) for t in times])
        self.t0 = float(t0)
        self.speed = float(speed)
        self.grace = grace
        self.life = None
        self.spawning = None              # the Task creating the next process, while it runs
        self.task = manager._track(self.run())

    def schedule_time(self, trace_t):
        """The daemon-clock time of trace time ``trace_t``."""
        return self.t0 + trace_t / self.speed

    async def sleep_until(self, when):
        """Sleep until the daemon clock reads ``when`` (at once if it is past)."""
        delay = when - self.manager.clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def emit_churn(self, change, scheduled, **fields):
        """Report an action (or a crash) to the controller."""
        self.manager.emit({"type": "churn", "id": self.instance.id, "change": change,
                           "at": self.manager.clock(), "scheduled": scheduled, **fields})

    async def run(self):
        """The whole replay of this instance, then its end."""
        try:
            for index, (up, down) in enumerate(self.intervals):
                final = await self.one_interval(up, down, last=index == len(self.intervals) - 1)
                if final is not None:
                    self.manager.end_instance(self.instance, *final)
                    return
        except asyncio.CancelledError:
            # Stopped by the controller: whatever runs now is stopped, and the instance ends. A
            # process being created is awaited first: it must not outlive the instance.
            if self.spawning is not None:
                try:
                    self.life = await self.spawning
                except Exception:
                    self.life = None
            code = await self.stop_life() if self.life is not None else None
            self.manager.end_instance(self.instance, "KILLED", code, "stopped")

    async def one_interval(self, up, down, last):
        """Create, release and (at ``down``) stop one process. Returns the instance's final
        ``(state, exit_code, reason)`` when this interval ends it, else None."""
        up_at = self.schedule_time(up)
        await self.sleep_until(up_at - PRESTART)
        self.spawning = asyncio.ensure_future(self.spawn_life())
        try:
            self.life = await asyncio.shield(self.spawning)
            self.spawning = None
        except asyncio.CancelledError:
            raise
        except Exception as e:           # this life is lost; a later one may still start
            self.spawning = None
            reason = f"cannot start the process: {type(e).__name__}: {e}"
            self.emit_churn("crashed", up_at, reason=reason, exit_code=None)
            return ("EXITED", None, reason) if last else None
        await self.sleep_until(up_at)
        if self.life.ended.done():       # died while it waited for its up time
            code = self.life.ended.result()
            self.life = None
            reason = f"its process ended before its up time (exit status {code})"
            self.emit_churn("crashed", up_at, reason=reason, exit_code=code)
            return ("EXITED", code, reason) if last else None
        self.release()
        self.emit_churn("up", up_at, pid=self.life.pid)
        if down is None:
            # Shielded, as every wait on a life: a cancelled replay still reads its exit status.
            code = await asyncio.shield(self.life.ended)
            self.life = None
            return "EXITED", code, f"exit status {code}"
        down_at = self.schedule_time(down)
        try:
            code = await asyncio.wait_for(asyncio.shield(self.life.ended),
                                          max(0.0, down_at - self.manager.clock()))
        except asyncio.TimeoutError:
            self.instance.state = "DOWN"
            self.signal(signal.SIGTERM)
            self.emit_churn("down", down_at)
            code = await self.wait_or_kill()
            self.life = None
            return ("KILLED", code, LAST_DOWN) if last else None
        self.life = None
        reason = f"its process ended while up (exit status {code})"
        self.instance.state = "DOWN"
        self.emit_churn("crashed", down_at, reason=reason, exit_code=code)
        return ("EXITED", code, reason) if last else None

    def release(self):
        """Let the waiting process run its node (the go line on its stdin)."""
        self.instance.process = self.life.process
        self.instance.state = "RUNNING"
        try:
            self.life.process.stdin.write(GO)
            self.life.process.stdin.flush()
            self.life.process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass                         # it died meanwhile: its end is seen as a crash

    def signal(self, signum):
        """Signal the current process's group."""
        self.manager._signal_group(self.life.pid, signum)

    async def wait_or_kill(self):
        """The current process's exit status, SIGKILL after the grace period."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.life.ended), self.grace)
        except asyncio.TimeoutError:
            self.signal(signal.SIGKILL)
            return await asyncio.shield(self.life.ended)

    async def stop_life(self):
        """Stop the current process (SIGTERM, SIGKILL after the grace period)."""
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)
        code = await self.wait_or_kill()
        self.life = None
        return code

    def cancel(self):
        """Stop the replay (the controller stopped the instance)."""
        self.task.cancel()
