"""Threads on a shared CPU: OpenMP's passive wait policy is set before torch loads in every entry
point, --threads is honoured by training, and a slowed training run prints one notice."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from utils.pace import PaceWatch

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


def test_the_wait_policy_is_passive_unless_the_user_chose_one():
    code = "import os, sys; import utils.omp; import torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = lambda e: subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=e, capture_output=True, text=True,
                                   check=True).stdout.strip()
    assert run(env) == "PASSIVE"
    assert run({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


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


@pytest.mark.slow
def test_training_takes_the_threads_option(tmp_path):
    from tests.helpers import tiny_config, write_config

    cfg = write_config(tmp_path / "c.json", tiny_config())
    code = ("import sys, torch, train; import trainer.base_trainer as b\n"
            "orig = b.BaseTrainer.train\n"
            "def spy(self):\n    print('threads', torch.get_num_threads()); return orig(self)\n"
            "b.BaseTrainer.train = spy\n"
            "sys.exit(train.main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "-c", str(cfg), "--iters", "1", "--threads", "1",
                          "--save_dir", str(tmp_path / "s"), "--device", "cpu"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "threads 1" in out.stdout
    bad = subprocess.run([sys.executable, "train.py", "-c", str(cfg), "--threads", "0", "--save_dir",
                          str(tmp_path / "t")], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: --threads 0: give at least 1 (or leave it out for one per core)"]
