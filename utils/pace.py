"""A one-line notice when training iterations run much slower than the run's own best pace
(usually: another busy program shares the CPU)."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Optional


class PaceWatch:
    """Call :meth:`step` once per iteration. The median duration of each ``window`` iterations is
    compared with the fastest window seen so far; when it is ``factor`` times slower, :meth:`step`
    returns a notice (at most one per ``quiet_s`` seconds), else None. Medians keep iterations that
    validate or save from counting as slow."""

    def __init__(self, window: int = 20, factor: float = 2.0, quiet_s: float = 600.0, hint: str = "",
                 clock: Callable[[], float] = time.perf_counter):
        self.window, self.factor, self.quiet_s, self.hint, self.clock = window, factor, quiet_s, hint, clock
        self._last: Optional[float] = None
        self._durations: list[float] = []
        self.best: Optional[float] = None
        self._noticed_at: Optional[float] = None

    def step(self) -> Optional[str]:
        now = self.clock()
        last, self._last = self._last, now
        if last is None:
            return None
        self._durations.append(now - last)
        if len(self._durations) < self.window:
            return None
        median, self._durations = statistics.median(self._durations), []
        if self.best is None or median < self.best:
            self.best = median
            return None
        if median < self.factor * self.best:
            return None
        if self._noticed_at is not None and now - self._noticed_at < self.quiet_s:
            return None
        self._noticed_at = now
        return (f"notice: iterations take {median / self.best:.1f}x as long as this run's fastest "
                f"({median:.2f} s against {self.best:.2f} s each){': ' + self.hint if self.hint else ''}")
