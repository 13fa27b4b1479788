"""Shared test fixtures. Reference data lives in ``../shared/reference`` beside the repository;
plain helpers (paths, the tiny configs, runners) are in ``tests/helpers.py``."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import helpers  # noqa: E402


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    assert helpers.REFERENCE.is_dir(), (f"reference data not found at {helpers.REFERENCE} (it sits beside the "
                                        "repository; or set IAFACES_REFERENCE)")
    return helpers.REFERENCE


@pytest.fixture(scope="session")
def official_layout(reference_dir):
    return json.loads((reference_dir / "official_layout.json").read_text())


@pytest.fixture
def tiny_config() -> dict:
    """A fresh tiny training-config dict (``helpers.TINY_CONFIG``): change it freely."""
    return helpers.tiny_config()


@pytest.fixture
def tiny_model_config():
    """The tiny ``ModelConfig`` factory: ``tiny_model_config(arch, encoder=, generator=,
    discriminator=, types=)`` (``helpers.tiny_model_config``)."""
    return helpers.tiny_model_config


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    """A saved tiny own-format checkpoint (``iafaces``, 32 px, seed 0, with a discriminator) whose
    training config names SynthFaces: ``<tmp>/ckpt/tiny.pth``."""
    return helpers.save_tiny_checkpoint(tmp_path / "ckpt" / "tiny.pth", discriminator=True)


@pytest.fixture(scope="module")
def astronaut():
    """scikit-image's astronaut photo, 512 x 512 RGB (no download)."""
    import numpy as np

    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut())


@pytest.fixture
def count_reads(monkeypatch):
    """Counts ``torch.load`` calls (every checkpoint read goes through it)."""
    import torch

    calls = []
    original = torch.load

    def counting_load(f, *args, **kwargs):
        calls.append(str(f))
        return original(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    return calls


@pytest.fixture(scope="session")
def parity_arrays(reference_dir):
    """The official implementation's outputs on the filled 256-px models (reference README)."""
    import numpy as np

    return np.load(reference_dir / "official_parity_256.npz")
