"""Start-up progress of ``splay run`` on stderr: ``[splay] starting nodes 37/100``.

On a terminal the line is redrawn in place (and cleared before any other output is written, then
redrawn); elsewhere (``--progress`` into a file or pipe) a plain line is written at most once a
second and at the end. Nothing is shown when stderr is not a terminal and ``--progress`` was not given.
"""
import sys
import time

__all__ = ["Progress"]


class Progress:
    """Progress of starting ``total`` nodes, written to ``stream``."""

    def __init__(self, total, stream=sys.stderr, force=False, interval=1.0):
        self.total = total
        self.stream = stream
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.enabled = self.tty or force
        self.interval = interval
        self.started = 0
        self._shown = False          # a tty line is on screen
        self._last_plain = None      # when the last plain line was written
        self._t0 = time.monotonic()
        self.done = False

    def _text(self):
        return f"[splay] starting nodes {self.started}/{self.total}"

    def update(self, started):
        """``started`` nodes are started now."""
        self.started = started
        if not self.enabled or self.done:
            return
        if self.tty:
            self._draw()
        else:
            now = time.monotonic()
            if self._last_plain is None or now - self._last_plain >= self.interval:
                self._last_plain = now
                self._put(self._text() + "\n")

    def _draw(self):
        self._put("\r\033[K" + self._text())
        self._shown = True

    def clear(self):
        """Remove the progress line from a terminal (before other output is written)."""
        if self._shown:
            self._put("\r\033[K")
            self._shown = False

    def redraw(self):
        """Show the progress line again after other output, while nodes are still starting."""
        if self.enabled and self.tty and not self.done and not self._shown:
            self._draw()

    def finish(self):
        """All nodes are started (or starting was cut short): write the final line."""
        if not self.enabled or self.done:
            self.done = True
            return
        self.clear()
        self.done = True
        elapsed = time.monotonic() - self._t0
        self._put(f"[splay] started {self.started}/{self.total} nodes in {elapsed:.1f} s\n")

    def _put(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            self.enabled = False
