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

    def _window_median(self, length: int) -> Optional[float]:
        """Records the time since the last call; the median of the last ``length`` durations once
        that many are in (and starts a new window), else None."""
        now = self.clock()
        last, self._last = self._last, now
        if last is None:
            return None
        self._durations.append(now - last)
        if len(self._durations) < length:
            return None
        median, self._durations = statistics.median(self._durations), []
        return median

    def step(self) -> Optional[str]:
        median = self._window_median(self.window)
        if median is None:
            return None
        now = self._last
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
    """:class:`PaceWatch` that also acts. Another program holding a core makes each parallel region
    wait for a descheduled thread, and one thread is then faster than ``threads``. The governor
    probes: now and then it runs ``probe_window`` iterations at the other thread count and keeps
    whichever count ran faster (by the median); after a probe that changes nothing the wait before
    the next one doubles (from 1 window up to ``max_gap``), after a change it starts again at 1. A
    window at ``threads`` threads that is ``factor`` times slower than their fastest switches to one
    thread at once. :meth:`step` returns a one-line notice at each change of the thread count, else
    None."""

    def __init__(self, threads: int, set_threads: Callable[[int], None], window: int = 20, factor: float = 1.6,
                 max_gap: int = 32, probe_window: int = 5, hint: str = "",
                 clock: Callable[[], float] = time.perf_counter):
        super().__init__(window=window, factor=factor, hint=hint, clock=clock)
        self.full, self.set_threads, self.max_gap, self.probe_window = threads, set_threads, max_gap, probe_window
        self.threads = threads
        self._gap = 1  # windows to run at the current count before the next probe
        self._since_probe = 0
        self._before: Optional[float] = None  # during a probe: the last median at the other count

    def _use(self, n: int) -> None:
        self.threads = n
        self.set_threads(n)

    def _use_the_other(self) -> None:
        self._use(1 if self.threads == self.full else self.full)

    def _went_to_one(self, why: str) -> str:
        return (f"notice: {why}{': ' + self.hint if self.hint else ''}; training goes on with one thread and "
                f"tries {self.full} again now and then")

    def _switched(self, median: float, other: float) -> str:
        self._gap, self._since_probe = 1, 0
        if self.threads == self.full:
            return (f"notice: back to {self.full} threads ({median:.2f} s per iteration against {other:.2f} s "
                    "with one): the CPU is free again")
        return self._went_to_one(f"one thread runs faster than {self.full} ({median:.2f} s per iteration "
                                 f"against {other:.2f} s)")

    def step(self) -> Optional[str]:
        median = self._window_median(self.window if self._before is None else self.probe_window)
        if median is None:
            return None
        if self.threads == self.full and (self.best is None or median < self.best):
            self.best = median
        if self._before is not None:  # a probe window: keep the probed count only if it ran faster
            before, self._before = self._before, None
            if median < before:
                return self._switched(median, before)
            self._use_the_other()
            self._gap, self._since_probe = min(2 * self._gap, self.max_gap), 0
            return None
        if self.threads == self.full and median >= self.factor * self.best:
            self._use(1)
            self._gap, self._since_probe = 1, 0
            return self._went_to_one(f"iterations take {median / self.best:.1f}x as long as this run's fastest "
                                     f"({median:.2f} s against {self.best:.2f} s each)")
        self._since_probe += 1
        if self._since_probe >= self._gap:
            self._before = median
            self._use_the_other()
        return None
