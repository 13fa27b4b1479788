"""Checkpoints (model/checkpoint.py): released-format files, the project's own format and the
official export, one read per load, bounded loading of crafted files, atomic saves."""
import json
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from model import build_networks
from model.checkpoint import load_models, read_checkpoint
from tests.helpers import fill_official, official_model_config, save_faces
from utils.errors import CheckpointError


def _released_like_file(path, layout, dtype=torch.float32):
    """Write a file shaped like a released checkpoint: a pickled ``parse_config.ConfigParser``
    holding the JSON config and PosixPath members, OrderedDict state dicts."""
    import collections
    import pathlib

    mod = types.ModuleType("parse_config")

    class ConfigParser:
        pass

    ConfigParser.__module__, ConfigParser.__qualname__ = "parse_config", "ConfigParser"
    mod.ConfigParser = ConfigParser
    sys.modules["parse_config"] = mod
    try:
        parser = ConfigParser()
        parser._config = collections.OrderedDict(
            model_arch=layout["model_arch"],
            encoder={"type": "Encoder", "args": layout["encoder_args"]},
            generator={"type": "Generator", "args": layout["generator_args"]},
            discriminator={"type": "Discriminator", "args": layout["discriminator_args"]})
        parser._save_dir = pathlib.PosixPath("saved/models/x/0101_000000")
        payload = {"epoch": 1, "iteration": 10, "config": parser,
                   "e_ema": collections.OrderedDict(fill_official(layout["e_ema"], dtype)),
                   "g_ema": collections.OrderedDict(fill_official(layout["g_ema"], dtype))}
        torch.save(payload, path)
    finally:
        del sys.modules["parse_config"]


@pytest.mark.slow
def test_released_cam256_checkpoint_loads_with_official_placement(tmp_path, official_layout, parity_arrays):
    from model.checkpoint import load_models

    name = "iafaces_cam-celebahq-256"
    path = tmp_path / "released.pth"
    _released_like_file(path, official_layout[name])
    models = load_models(path, device="cpu")
    assert models.source == "official" and models.model_config.arch == "iafaces_cam_256"
    assert models.model_config.generator.cam_placement == "official"
    assert not models.encoder.training and not any(p.requires_grad for p in models.generator.parameters())
    x = torch.from_numpy(np.random.default_rng(7).uniform(-1, 1, (1, 3, 256, 256))).float()
    with torch.no_grad():  # float32 as loaded (float64 would double the time for nothing: the file is float32)
        image = models.generator(*models.encoder(x)).numpy()
    ref = parity_arrays[f"{name}/image"]
    assert np.abs(image - ref).max() / np.abs(ref).max() < 1e-4
    # The editing scripts take the same released-format file.
    import component_transfer
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(
            tmp_path / f"face{i}.png")
    out = tmp_path / "out"
    assert component_transfer.main(["--resume", str(path), "--target", str(tmp_path / "face0.png"),
                                    "--reference", str(tmp_path / "face1.png"), "--component", "mouth",
                                    "--out", str(out), "--device", "cpu"]) == 0
    assert Image.open(out / "face0.png").size == (256, 256)


def test_sample_checkpoint_loads_config_but_not_as_networks(reference_dir):
    from model.checkpoint import load_models, read_checkpoint
    from model.official_checkpoint import CheckpointError

    payload, source = read_checkpoint(reference_dir / "official_checkpoint_format_sample.pth")
    assert source == "official" and payload["config"]["model_arch"] == "iafaces_256"
    with pytest.raises(CheckpointError, match="does not match"):
        load_models(reference_dir / "official_checkpoint_format_sample.pth", device="cpu")


def test_own_checkpoint_roundtrip_and_official_export(tmp_path, tiny_model_config):
    from model.checkpoint import load_models, save_model_checkpoint, save_official_layout

    cfg = tiny_model_config()
    E, G, _ = build_networks(cfg, discriminator=False)
    save_model_checkpoint(tmp_path / "own.pth", E, G, cfg, config={"exp_id": "t"})
    raw = torch.load(tmp_path / "own.pth", weights_only=True)
    json.dumps(raw["model_config"]) and json.dumps(raw["config"])
    models = load_models(tmp_path / "own.pth", device="cpu")
    assert models.source == "project" and models.model_config == cfg and models.config["exp_id"] == "t"
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(models.generator(*models.encoder(x)), G(*E(x)))
    with pytest.raises(ValueError, match="no official counterpart"):
        save_official_layout(tmp_path / "off.pth", models)


def test_official_export_roundtrip(tmp_path, official_layout):
    from model.checkpoint import LoadedModels, load_models, save_official_layout

    layout = official_layout["iafaces-celebahq-256"]
    cfg = official_model_config(layout)
    E, G, _ = build_networks(cfg, discriminator=False)
    out = tmp_path / "exported.pth"
    save_official_layout(out, LoadedModels(E, G, None, cfg, {}, "project", "", torch.device("cpu")))
    raw = torch.load(out, weights_only=True)
    assert list(raw["g_ema"]) == [e["key"] for e in layout["g_ema"]]
    again = load_models(out, device="cpu")
    assert again.source == "official"
    for a, b in zip(again.generator.state_dict().values(), G.state_dict().values()):
        assert torch.equal(a, b)


def test_atomic_save_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    from model.checkpoint import atomic_save

    path = tmp_path / "latest.pth"
    atomic_save({"v": torch.ones(3)}, path)

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save({"v": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pth"]  # no temp file left


# ------------------------------------------------------------------------- one read per load
def test_own_checkpoint_is_read_once(tiny_checkpoint, count_reads):
    """A checkpoint file is read from disk (unpickled) once per load, whatever the caller needs."""
    from editing import Editor
    from evaluation.discriminators import load_discriminator

    models = load_models(tiny_checkpoint, device=torch.device("cpu"), discriminator=True)
    assert models.discriminator is not None and len(count_reads) == 1
    Editor.from_checkpoint(tiny_checkpoint, device="cpu")
    assert len(count_reads) == 2
    load_discriminator(tiny_checkpoint)
    assert len(count_reads) == 3


def test_released_sample_is_read_once(reference_dir, count_reads):
    sample = reference_dir / "official_checkpoint_format_sample.pth"
    payload, source = read_checkpoint(sample)
    assert source == "official" and len(count_reads) == 1
    with pytest.raises(CheckpointError):
        load_models(sample, device=torch.device("cpu"), discriminator=True)
    assert len(count_reads) == 2


# ------------------------------------------------------------------- crafted checkpoints are bounded
def _zip_bomb(path: Path) -> None:
    """A torch.save archive plus one deflated 32 MB entry of zeros (about 32 KB on disk)."""
    torch.save({"w": torch.zeros(2)}, path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(zf.namelist()[0].split("/")[0] + "/data/bomb", "w") as f:  # inside torch's record folder
            chunk = bytes(1 << 20)
            for _ in range(32):
                f.write(chunk)


@pytest.mark.parametrize("case", ["no_e_ema", "list_model_config", "huge_channels", "channels_over_bound",
                                  "config_int_limit", "zip_bomb"])
def test_crafted_checkpoint_is_one_line(tiny_checkpoint, tmp_path, capsys, case):
    """Hostile inputs (issue 15): a crafted checkpoint is refused before anything is allocated,
    with one ``error:`` line from the scripts."""
    import reconstruction
    from model.checkpoint import atomic_save
    from tests.helpers import one_error_line

    bad = tmp_path / f"{case}.pth"
    if case == "zip_bomb":
        _zip_bomb(bad)
        assert bad.stat().st_size < 1 << 20
    else:
        payload = torch.load(tiny_checkpoint, weights_only=True)
        if case == "no_e_ema":
            del payload["e_ema"]
        elif case == "list_model_config":
            payload["model_config"] = ["arch"]
        elif case == "huge_channels":  # widths within bounds, but a network far larger than the weights
            payload["model_config"]["encoder"]["args"]["channel"] = 4096
            payload["model_config"]["encoder"]["args"]["channel_max"] = 4096
        elif case == "channels_over_bound":  # a 3 GB first conv from one number, refused by the bound
            payload["model_config"]["encoder"]["args"]["channel"] = 1 << 19
            payload["model_config"]["encoder"]["args"]["channel_max"] = 1 << 19
        else:
            payload["model_config"]["generator"]["args"]["channel_base"] = 1 << 40
        atomic_save(payload, bad)
    with pytest.raises(CheckpointError, match={"zip_bomb": "uncompressed", "no_e_ema": "e_ema",
                                              "list_model_config": "model_config",
                                              "huge_channels": "configuration does not match the weights",
                                              "channels_over_bound": "encoder.channel must be .* <= 4096",
                                              "config_int_limit": "channel_base = 1099511627776, above"}[case]):
        load_models(bad)
    faces = save_faces(tmp_path / "faces")
    assert reconstruction.main(["--resume", str(bad), "--device", "cpu", "--data_path", str(faces),
                                "--out", str(tmp_path / "out")]) == 2
    one_error_line(capsys, str(bad))
