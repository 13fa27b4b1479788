"""A checkpoint file is read from disk (unpickled) once per load, whatever the caller needs."""
import pytest
import torch

from model import build_model_config, build_networks
from model.checkpoint import load_models, read_checkpoint, save_model_checkpoint
from utils.errors import CheckpointError


@pytest.fixture
def count_reads(monkeypatch):
    """Counts ``torch.load`` calls (every checkpoint read goes through it)."""
    calls = []
    original = torch.load

    def counting_load(f, *args, **kwargs):
        calls.append(str(f))
        return original(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    return calls


@pytest.fixture
def own_checkpoint(tmp_path):
    cfg = build_model_config("iafaces", encoder={"size": 32, "channel": 8, "channel_max": 32,
                                                 "content_channels": 32, "comp_dim": 16},
                             generator={"channel_base": 512, "channel_max": 32},
                             discriminator={"channel_base": 512, "channel_max": 32})
    E, G, D = build_networks(cfg)
    path = tmp_path / "own.pth"
    save_model_checkpoint(path, E, G, cfg, config={"exp_id": "t"}, discriminator=D)
    return path


def test_own_checkpoint_is_read_once(own_checkpoint, count_reads):
    from editing import Editor
    from evaluation.discriminators import load_discriminator

    models = load_models(own_checkpoint, device=torch.device("cpu"), discriminator=True)
    assert models.discriminator is not None and len(count_reads) == 1
    Editor.from_checkpoint(own_checkpoint, device="cpu")
    assert len(count_reads) == 2
    load_discriminator(own_checkpoint)
    assert len(count_reads) == 3


def test_released_sample_is_read_once(reference_dir, count_reads):
    sample = reference_dir / "official_checkpoint_format_sample.pth"
    payload, source = read_checkpoint(sample)
    assert source == "official" and len(count_reads) == 1
    with pytest.raises(CheckpointError):
        load_models(sample, device=torch.device("cpu"), discriminator=True)
    assert len(count_reads) == 2


def test_benchmark_reads_its_checkpoint_once(own_checkpoint, count_reads, monkeypatch):
    """The benchmark takes the checkpoint's discriminator when there is one, from the same read."""
    import evaluation.synth_benchmark as sb

    seen = {}

    def stop(editor, *args, **kwargs):
        seen["D"] = args[5]
        raise KeyboardInterrupt

    monkeypatch.setattr(sb, "get_classifier", lambda *a, **k: None)
    monkeypatch.setattr(sb, "_check_classifier_overlap", lambda *a, **k: None)
    monkeypatch.setattr(sb, "Benchmark", stop)
    args = sb.build_parser().parse_args(["--resume", str(own_checkpoint), "--device", "cpu", "--num", "2"])
    with pytest.raises(KeyboardInterrupt):
        sb.run_from_args(args, log=lambda m: None)
    assert seen["D"] is not None and count_reads == [str(own_checkpoint)]
