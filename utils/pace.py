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


class ThreadGovernor(PaceWatch):
    """:class:`PaceWatch` that also acts: when the windows at ``threads`` threads turn ``factor``
    times slower than their fastest (another program holds a core, and each parallel region waits
    for a descheduled thread), it calls ``set_threads(1)``; every ``probe_every`` windows at one
    thread it tries ``threads`` again for one window and keeps whichever ran faster. :meth:`step`
    returns a one-line notice at each change of the thread count, else None."""

    def __init__(self, threads: int, set_threads: Callable[[int], None], window: int = 20, factor: float = 1.6,
                 probe_every: int = 5, hint: str = "", clock: Callable[[], float] = time.perf_counter):
        super().__init__(window=window, factor=factor, hint=hint, clock=clock)
        self.full, self.set_threads, self.probe_every = threads, set_threads, probe_every
        self.threads = threads
        self._windows_at_one = 0
        self._one_median: Optional[float] = None

    def _use(self, n: int) -> None:
        self.threads = n
        self.set_threads(n)

    def step(self) -> Optional[str]:
        now = self.clock()
        last, self._last = self._last, now
        if last is None:
            return None
        self._durations.append(now - last)
        if len(self._durations) < self.window:
            return None
        median, self._durations = statistics.median(self._durations), []
        if self.threads == self.full:
            if self._one_median is not None:  # a probe window: keep it only if it beat one thread
                one, self._one_median = self._one_median, None
                if median >= one:
                    self._use(1)
                    return None
                return (f"notice: back to {self.full} threads ({median:.2f} s per iteration against {one:.2f} s "
                        "with one): the CPU is free again")
            if self.best is None or median < self.best:
                self.best = median
                return None
            if median < self.factor * self.best:
                return None
            self._use(1)
            self._windows_at_one = 0
            return (f"notice: iterations take {median / self.best:.1f}x as long as this run's fastest "
                    f"({median:.2f} s against {self.best:.2f} s each){': ' + self.hint if self.hint else ''}; "
                    f"training goes on with one thread and tries {self.full} again every "
                    f"{self.window * self.probe_every} iterations")
        self._windows_at_one += 1
        if self._windows_at_one % self.probe_every == 0:
            self._one_median = median
            self._use(self.full)
        return None
