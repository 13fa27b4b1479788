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
REFERENCE = ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    assert REFERENCE.is_dir(), f"reference data not found at {REFERENCE} (it sits beside the repository)"
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
