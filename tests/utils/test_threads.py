"""Threads on a shared CPU: OpenMP's bounded spin is set before torch loads in every entry point,
--threads is honoured by training, a slowed training run prints one notice, and without --threads
training drops to one thread while another program holds a core."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils.pace import PaceWatch, ThreadGovernor

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = ["train.py", "app.py", "attr_manipulation.py", "component_transfer.py", "reconstruction.py",
                "evaluation/__init__.py"]


def _first_import(path: Path) -> str:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.Import):
            return node.names[0].name
        if isinstance(node, ast.ImportFrom):
            return node.module or ""
    return ""


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_each_entry_point_sets_the_wait_policy_before_anything_imports_torch(name):
    assert _first_import(ROOT / name) == "utils.omp"


def test_openmp_spins_briefly_unless_the_user_chose_a_wait_policy_or_spin_count():
    code = ("import os, sys; import utils.omp; "  # torch itself is not needed: the values libgomp will read
            "print(os.environ.get('OMP_WAIT_POLICY', '-'), os.environ.get('GOMP_SPINCOUNT', '-'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    run = lambda e: subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=e, capture_output=True, text=True,
                                   check=True).stdout.strip()
    assert run(env) == "- 30000"
    assert run({**env, "OMP_WAIT_POLICY": "PASSIVE"}) == "PASSIVE -"
    assert run({**env, "GOMP_SPINCOUNT": "INFINITY"}) == "- INFINITY"


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _run(watch: PaceWatch, clock: FakeClock, durations):
    notices = []
    for d in durations:
        clock.t += d
        n = watch.step()
        if n:
            notices.append(n)
    return notices


def test_pace_watch_notices_a_lasting_slowdown_once_and_ignores_single_slow_steps():
    clock = FakeClock()
    watch = PaceWatch(window=10, factor=2.0, quiet_s=1e9, hint="close it", clock=clock)
    # Steady 0.5 s iterations with a slow validation step in every window: no notice.
    steady = ([0.5] * 9 + [30.0]) * 5
    assert _run(watch, clock, steady) == []
    assert watch.best == pytest.approx(0.5)
    # Another program starts: iterations take 1.6 s from now on; one notice, not one per window.
    notices = _run(watch, clock, [1.6] * 60)
    assert len(notices) == 1
    assert "3.2x" in notices[0] and "1.60 s against 0.50 s" in notices[0] and notices[0].endswith("close it")
    # 1.5x slower is within the factor: no notice.
    clock2 = FakeClock()
    watch2 = PaceWatch(window=10, factor=2.0, clock=clock2)
    assert _run(watch2, clock2, [0.5] * 30 + [0.75] * 50) == []


def _simulate(gov: ThreadGovernor, clock: FakeClock, iterations: int, seconds: dict) -> list:
    """Runs ``iterations`` iterations, each taking ``seconds[threads in use]``; returns the notices."""
    notices = []
    for _ in range(iterations):
        clock.t += seconds[gov.threads]
        notice = gov.step()
        if notice:
            notices.append(notice)
    return notices


QUIET, BUSY = {2: 0.3, 1: 0.45}, {2: 1.2, 1: 0.6}


def test_thread_governor_drops_to_one_thread_under_contention_and_returns_when_the_cpu_is_free():
    clock, calls = FakeClock(), []
    gov = ThreadGovernor(2, calls.append, window=10, factor=1.6, max_gap=4, probe_window=3, hint="busy", clock=clock)
    # Quiet: probes at one thread lose, and come ever more rarely (after 1, 2, 4, 4, ... windows).
    assert _simulate(gov, clock, 200, QUIET) == [] and gov.threads == 2
    assert calls == [1, 2] * 5
    # A busy program arrives: the next window at 2 threads is much slower than the fastest -> one
    # thread at once.
    calls.clear()
    notices = _simulate(gov, clock, 10, BUSY)
    assert calls == [1] and gov.threads == 1
    assert len(notices) == 1 and "as long as this run's fastest" in notices[0] and "busy" in notices[0]
    # While it runs, probes at 2 threads lose (silently) and training stays at one thread.
    assert _simulate(gov, clock, 200, BUSY) == [] and gov.threads == 1
    assert 1 <= calls.count(2) <= 7
    # It ends: within a probe gap and a window the 2 threads are back, with a notice.
    notices = _simulate(gov, clock, 50, QUIET)
    assert gov.threads == 2 and len(notices) == 1 and notices[0].startswith("notice: back to 2 threads")


def test_thread_governor_finds_one_thread_faster_when_the_cpu_is_busy_from_the_start():
    """No window is slower than the run's fastest then, so only the probe can tell."""
    clock, calls = FakeClock(), []
    gov = ThreadGovernor(2, calls.append, window=10, max_gap=4, probe_window=3, hint="busy", clock=clock)
    notices = _simulate(gov, clock, 21, BUSY)
    assert calls == [1] and gov.threads == 1
    assert len(notices) == 1 and notices[0].startswith("notice: one thread runs faster than 2 (0.60 s")
    assert "busy" in notices[0]
    assert _simulate(gov, clock, 100, BUSY) == [] and gov.threads == 1


def test_training_adapts_its_threads_only_when_the_user_did_not_choose_them(tmp_path):
    from tests.helpers import tiny_trainer

    tr = tiny_trainer(tmp_path)
    assert type(tr.pace_watch()) is PaceWatch  # off unless train.py turns it on
    tr.adapt_threads = True
    assert isinstance(tr.pace_watch(), ThreadGovernor) == (torch.get_num_threads() > 1)


@pytest.mark.slow
def test_training_takes_the_threads_option(tmp_path):
    from tests.helpers import tiny_config, write_config

    cfg = write_config(tmp_path / "c.json", tiny_config())
    code = ("import sys, torch, train; import trainer.base_trainer as b\n"
            "orig = b.BaseTrainer.train\n"
            "def spy(self):\n    print('threads', torch.get_num_threads(), 'adapt', self.adapt_threads); return orig(self)\n"
            "b.BaseTrainer.train = spy\n"
            "sys.exit(train.main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "-c", str(cfg), "--iters", "1", "--threads", "1",
                          "--save_dir", str(tmp_path / "s"), "--device", "cpu"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "threads 1 adapt False" in out.stdout
    bad = subprocess.run([sys.executable, "train.py", "-c", str(cfg), "--threads", "0", "--save_dir",
                          str(tmp_path / "t")], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: --threads 0: give at least 1 (or leave it out for one per core)"]
