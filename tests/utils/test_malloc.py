"""utils.malloc: glibc thresholds are raised once, and the user's own settings win."""
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

CODE = "from utils.malloc import tune_malloc; print(tune_malloc(), tune_malloc())"


def run(env_extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "IAFACES_NO_MALLOC_TUNING"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_tune_malloc_applies_once_and_respects_user_settings():
    import ctypes.util
    if not ctypes.util.find_library("c"):
        pytest.skip("no C library found")
    assert run({}) == ["True", "True"]
    assert run({"MALLOC_MMAP_THRESHOLD_": "131072"}) == ["False", "False"]
    assert run({"IAFACES_NO_MALLOC_TUNING": "1"}) == ["False", "False"]
