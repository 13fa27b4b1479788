"""Shared test fixtures. Reference data lives in ``../shared/reference`` beside the repository."""
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _find_reference() -> Path:
    """``shared/reference`` beside the repository; for a clone of a local checkout (CI clones main
    elsewhere), beside the checkout it was cloned from; ``IAFACES_REFERENCE`` overrides both."""
    import os
    import subprocess

    if os.environ.get("IAFACES_REFERENCE"):
        return Path(os.environ["IAFACES_REFERENCE"])
    here = ROOT.parent / "shared" / "reference"
    if here.is_dir():
        return here
    try:
        origin = subprocess.run(["git", "-C", str(ROOT), "config", "remote.origin.url"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin and Path(origin).is_dir():
        beside_origin = Path(origin).resolve().parent / "shared" / "reference"
        if beside_origin.is_dir():
            return beside_origin
    return here


REFERENCE = _find_reference()


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    assert REFERENCE.is_dir(), f"reference data not found at {REFERENCE} (it sits beside the repository; or set IAFACES_REFERENCE)"
    return REFERENCE


@pytest.fixture(scope="session")
def official_layout(reference_dir):
    return json.loads((reference_dir / "official_layout.json").read_text())


def fill_official(entries, dtype=torch.float64):
    """Fill an official state_dict by the documented rule (reference README section 10)."""
    sd = {}
    for e in entries:
        if "constant" in e:
            sd[e["key"]] = torch.tensor(e["constant"], dtype=dtype).reshape(e["shape"])
        else:
            rng = np.random.default_rng(zlib.crc32(e["key"].encode("utf-8")))
            sd[e["key"]] = torch.from_numpy(rng.standard_normal(e["shape"]) * e["std"] + e["mean"]).to(dtype)
    return sd
