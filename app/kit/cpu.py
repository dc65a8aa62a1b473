"""Whether this thread is short of CPU: the share of time it spent runnable but waiting for a
core, from Linux's /proc/thread-self/schedstat."""

import time
from pathlib import Path

SCHEDSTAT = Path("/proc/thread-self/schedstat")


class Contention:
    """`busy()` is True while the calling thread waited for a core for more than `share` of
    the last `window` seconds (the verdict is kept for a window, one read of the file per
    window). Where the file cannot be read, never busy.

    The defaults: on the 2-core bench machine a Herald process waited 0.5 to 1% of the time
    at 1 process and 16 to 25% at 2; 5% of 50 ms windows still said busy now and then at 1.

    Call it from one thread: the file it reads is the caller's."""

    def __init__(self, *, share: float = 0.1, window: float = 0.1, path: Path = SCHEDSTAT) -> None:
        self.share = share
        self.window = window
        self.path = path
        self._at = 0.0
        self._waited: float | None = None
        self._busy = False

    def busy(self) -> bool:
        now = time.monotonic()
        if now - self._at < self.window:
            return self._busy
        waited = self._read()
        if waited is None or self._waited is None:
            self._busy = False
        else:
            self._busy = (waited - self._waited) > self.share * (now - self._at)
        self._at, self._waited = now, waited
        return self._busy

    def _read(self) -> float | None:
        """Seconds this thread has spent on a run queue, waiting for a core."""
        try:
            fields = self.path.read_text().split()
            return int(fields[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return None
