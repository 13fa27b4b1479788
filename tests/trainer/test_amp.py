"""bf16 autocast is chosen from the device: asked for by the config, used only where the device
computes bf16 natively (elsewhere it would be tens of times slower than float32)."""
import torch

import trainer.iafaces_trainer as iafaces_trainer
from tests.helpers import tiny_config, tiny_trainer
from utils.device import native_bf16


def test_bf16_is_used_only_where_the_device_has_it(tmp_path, monkeypatch):
    cfg = tiny_config(trainer={"amp": "bf16"})
    monkeypatch.setattr(iafaces_trainer, "native_bf16", lambda device: False)
    assert tiny_trainer(tmp_path / "without", cfg).amp is False
    monkeypatch.setattr(iafaces_trainer, "native_bf16", lambda device: True)
    assert tiny_trainer(tmp_path / "with", cfg).amp is True
    assert tiny_trainer(tmp_path / "float32", tiny_config(trainer={"amp": "none"})).amp is False


def test_native_bf16_answers_for_every_device_kind():
    assert isinstance(native_bf16(torch.device("cpu")), bool)
    assert native_bf16(torch.device("meta")) is False
    if not torch.cuda.is_available():
        assert native_bf16(torch.device("cuda")) is False
