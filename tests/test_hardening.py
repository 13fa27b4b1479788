"""Hostile inputs (issue 15): nothing from a file runs or writes, no run or input is overwritten,
every bad input is one ``error:`` line with exit status 2. Tiny models, in-process ``main(argv)``."""
import json
import shutil
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from test_training import TINY, run_train

SIZE = 32


# ------------------------------------------------------------------------------------------ helpers
def _one_error_line(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error:"), err
    assert not any("Traceback" in line for line in err), err
    for w in words:
        assert w in err[-1], err[-1]
    return err[-1]


def _tiny_model_config():
    from model.config import build_model_config

    return build_model_config("iafaces", encoder={"size": SIZE, "channel": 8, "channel_max": 32,
                                                  "content_channels": 32, "comp_dim": 16},
                              generator={"channel_base": 512, "channel_max": 32})


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_config(path: Path, **blocks) -> Path:
    cfg = json.loads(json.dumps(TINY))
    for key, value in blocks.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny own-format checkpoint, two input faces, and a one-iteration training run
    ``runs/models/tiny/a``."""
    from data_loader.synthfaces import render, sample_factors
    from model.checkpoint import save_model_checkpoint
    from model.networks import Encoder, Generator

    root = tmp_path_factory.mktemp("hardening")
    torch.manual_seed(0)
    mcfg = _tiny_model_config()
    ckpt = root / "ckpt" / "tiny.pth"
    save_model_checkpoint(ckpt, Encoder(mcfg.encoder), Generator(mcfg.generator), mcfg,
                          config={"data_set": {"type": "SynthFaces", "args": {"size": SIZE, "seed": 0}}})
    faces = root / "faces"
    faces.mkdir()
    for i in range(2):
        Image.fromarray(render(sample_factors(0, 29000 + i), SIZE)).save(faces / f"face{i}.png")
    cfg = _write_config(root / "tiny.json")
    assert run_train(["-c", str(cfg), "--iters", "1", "--device", "cpu", "--save_dir", str(root / "runs"),
                      "--run_id", "a"], root) == 0
    return {"root": root, "ckpt": ckpt, "faces": faces, "cfg": cfg, "runs": root / "runs",
            "latest": root / "runs/models/tiny/a/latest.pth"}


# ------------------------------------------------------------------------- 1. no code from a file
class _WritesOnLoad(nn.Module):
    """A TorchScript module whose ``__setstate__`` (run by ``torch.jit.load``) overwrites a file."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target

    def forward(self, x):
        return x.mean().reshape(1, 1)

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool]:
        return (self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]) -> None:
        self.target = state[0]
        t = torch.from_file(self.target, True, 4, dtype=torch.uint8)
        self.training = bool(t.fill_(88).sum() < 0) or state[1]


@pytest.mark.filterwarnings("ignore::FutureWarning")  # TorchScript is deprecated, still supported
def test_torchscript_metric_network_never_runs(work, tmp_path, capsys):
    from evaluation import compare

    victim = tmp_path / "victim.txt"
    victim.write_text("safe")
    torch.jit.script(_WritesOnLoad(str(victim))).save(str(tmp_path / "evil.ts"))
    assert victim.read_text() == "safe"
    faces = str(work["faces"])
    for flags in (["--metrics", "ifg", "--discriminator"], ["--metrics", "arc_dis", "--arcface"]):
        assert compare.main(["--real", faces, "--fake", faces, *flags, str(tmp_path / "evil.ts")]) == 2
        _one_error_line(capsys, "TorchScript", "--trust_code")
    assert victim.read_text() == "safe"


# ------------------------------------------------------------- 2. training writes only under save dir
def test_resume_ignores_folders_named_in_the_checkpoint(work, tmp_path, capsys):
    before = work["latest"].read_bytes()
    payload = torch.load(work["latest"], weights_only=True)
    payload.pop("run_id", None)
    payload.update(run_dir=str(tmp_path / "victim/models"), log_dir=str(tmp_path / "victim/log"))
    torch.save(payload, tmp_path / "copy.pth")
    save = tmp_path / "save"
    assert run_train(["-r", str(tmp_path / "copy.pth"), "--iters", "2", "--device", "cpu", "--save_dir", str(save)],
                     tmp_path) == 0
    assert not (tmp_path / "victim").exists()
    (run,) = (save / "models/tiny").iterdir()  # a copy gets its own run folder
    assert run.name != "models" and torch.load(run / "latest.pth", weights_only=True)["iteration"] == 2
    assert (save / "log/tiny" / run.name / "config.json").is_file()
    assert work["latest"].read_bytes() == before
    # A stored run id or exp id that is not a plain name is refused.
    payload["run_id"] = "../../escape"
    torch.save(payload, tmp_path / "bad_id.pth")
    assert run_train(["-r", str(tmp_path / "bad_id.pth"), "--iters", "2", "--device", "cpu"], tmp_path) == 2
    _one_error_line(capsys, "run id")
    assert run_train(["-c", str(_write_config(tmp_path / "c.json", exp_id="../../..")), "--iters", "1"],
                     tmp_path) == 2
    _one_error_line(capsys, "exp_id")


# ------------------------------------------------------------------ 3. runs are never overwritten
def test_used_run_id_is_refused_and_a_training_run_is_locked(work, tmp_path, capsys):
    import train

    from trainer.config import load_config

    before = work["latest"].read_bytes()
    args = ["-c", str(work["cfg"]), "--iters", "1", "--device", "cpu", "--save_dir"]
    assert run_train(args + [str(work["runs"]), "--run_id", "a"], work["root"]) == 2
    _one_error_line(capsys, "already holds checkpoints", "--overwrite")
    assert work["latest"].read_bytes() == before
    with train.run_lock(tmp_path / "models/tiny/busy"):
        assert run_train(args + [str(tmp_path), "--run_id", "busy"], work["root"]) == 2
    _one_error_line(capsys, "another process is training")
    # Default run ids of runs started in the same second differ (each reserves its folder).
    ns = type("Args", (), {"run_id": None, "resume": None})()
    cfg = load_config(work["cfg"])
    cfg.trainer.save_dir = str(tmp_path)
    ids = {train.plan_run(ns, cfg, None, "")[0] for _ in range(3)}
    assert len(ids) == 3


# -------------------------------------------------------- 7. stale temporaries removed on the next start
def test_resume_in_place_removes_stale_temporary_files(work, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(work["runs"], runs)
    stale = runs / "models/tiny/a/.latest.pth.k3j_x9aa.tmp"
    stale.write_bytes(b"partial checkpoint")
    assert run_train(["-r", str(runs / "models/tiny/a/latest.pth"), "--iters", "2", "--device", "cpu",
                      "--save_dir", str(runs)], tmp_path) == 0
    assert not stale.exists()
    assert sorted(p.name for p in (runs / "models/tiny").iterdir()) == ["a"]  # continued in place
    assert torch.load(runs / "models/tiny/a/latest.pth", weights_only=True)["iteration"] == 2


# ---------------------------------------------------------------------- 4. no output overwrites an input
def test_editing_output_must_not_hold_the_inputs(work, tmp_path, capsys):
    import component_transfer
    import reconstruction

    faces = work["faces"]
    before = _snapshot(faces)
    common = ["--resume", str(work["ckpt"]), "--device", "cpu"]
    assert reconstruction.main(common + ["--data_path", str(faces), "--out", str(faces)]) == 2
    _one_error_line(capsys, "holds the input")
    assert reconstruction.main(common + ["--data_path", str(faces / "face0.png"), "--out", str(faces.parent),
                                         "--save_real"]) == 2
    _one_error_line(capsys, "holds the input")
    assert component_transfer.main(common + ["--target", str(faces / "face0.png"), "--reference",
                                             str(faces / "face1.png"), "--component", "eyes", "--out", str(faces)]) == 2
    _one_error_line(capsys, "holds the input")
    assert _snapshot(faces) == before
    (tmp_path / "file").write_text("x")
    assert reconstruction.main(common + ["--data_path", str(faces), "--out", str(tmp_path / "file")]) == 2
    _one_error_line(capsys, "is a file")


def test_synthfaces_export_refuses_a_non_empty_folder(tmp_path, capsys):
    from data_loader.synthfaces.__main__ import main

    out = tmp_path / "ds"
    out.mkdir()
    (out / "train.txt").write_text("mine\n")
    assert main(["--out", str(out), "--num", "1", "--size", "32"]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "train.txt").read_text() == "mine\n"
    assert main(["--out", str(out), "--num", "1", "--size", "32", "--overwrite"]) == 0
    assert (out / "images/0.jpg").is_file()


# ------------------------------------------------------------------ 6. images read as a viewer shows them
def test_exif_rotated_jpeg_equals_its_upright_png(tmp_path):
    from utils.image_io import read_rgb_array

    y, x = np.mgrid[0:40, 0:60]
    upright = np.stack([x * 4, y * 6, (x + y) * 2], -1).astype(np.uint8)
    Image.fromarray(upright).save(tmp_path / "up.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", quality=100,
                                                                        subsampling=0, exif=exif)
    a, b = read_rgb_array(tmp_path / "phone.jpg"), read_rgb_array(tmp_path / "up.png")
    assert a.shape == b.shape == (40, 60, 3)
    assert np.abs(a.astype(int) - b).max() <= 3  # JPEG rounding only


def test_every_image_mode_is_read_over_its_real_range(tmp_path):
    from utils.image_io import read_rgb_array

    a8 = (np.arange(24 * 16) % 256).astype(np.uint8).reshape(16, 24)
    Image.fromarray(a8).save(tmp_path / "g8.png")
    ref = read_rgb_array(tmp_path / "g8.png")
    Image.fromarray(a8.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit grayscale
    Image.fromarray(a8.astype(np.float32) / 255).save(tmp_path / "f.tif")  # 32-bit float in [0, 1]
    Image.fromarray((a8.astype(np.int64) * (2 ** 31 - 1) // 255).astype(np.int32)).save(tmp_path / "i.tif")
    for name in ("g16.png", "f.tif", "i.tif"):
        assert np.array_equal(read_rgb_array(tmp_path / name), ref), name
    # Palette with transparency, LA and CMYK as a viewer shows them (alpha over white).
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0
    rgba[0, 0] = (10, 20, 30, 255)
    p = Image.fromarray(rgba[..., :3]).quantize(4)
    p.info["transparency"] = p.getpixel((1, 1))
    p.save(tmp_path / "p.png", transparency=p.getpixel((1, 1)))
    got = read_rgb_array(tmp_path / "p.png")
    assert tuple(got[1, 1]) == (255, 255, 255) and tuple(got[0, 0]) == (10, 20, 30)
    Image.fromarray(np.stack([a8, np.full_like(a8, 255)], -1), "LA").save(tmp_path / "la.png")
    assert np.array_equal(read_rgb_array(tmp_path / "la.png"), ref)
    Image.new("CMYK", (2, 2), (0, 0, 0, 0)).save(tmp_path / "c.jpg", quality=100)
    assert read_rgb_array(tmp_path / "c.jpg").min() >= 250  # no ink is white
    Image.fromarray(np.full((2, 2), 2.0, np.float32)).save(tmp_path / "over.tif")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        read_rgb_array(tmp_path / "over.tif")


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` px (a few bytes; never decoded)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\0" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
                     + struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat)))


def test_decompression_bomb_image_is_one_line(work, tmp_path, capsys):
    import reconstruction

    _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    assert reconstruction.main(["--resume", str(work["ckpt"]), "--device", "cpu", "--data_path",
                                str(tmp_path / "bomb.png"), "--out", str(tmp_path / "out")]) == 2
    _one_error_line(capsys, "bomb.png", "too large")


def test_non_finite_strength_and_weights_are_errors(work, tmp_path, capsys):
    import attr_manipulation
    import reconstruction
    from editing import Editor
    from model.checkpoint import atomic_save

    common = ["--resume", str(work["ckpt"]), "--device", "cpu", "--data_path", str(work["faces"])]
    for flag in (["--strength", "nan"], ["--strength", "inf"], ["--strengths=0,nan"]):
        assert attr_manipulation.main(common + ["--attr", "mouth_open", "--out", str(tmp_path / "o"), *flag]) == 2
        _one_error_line(capsys, "finite")
    with pytest.raises(ValueError, match="finite"):
        Editor.apply_direction(torch.zeros(1, 4, 16), torch.ones(4, 16), float("nan"))
    payload = torch.load(work["ckpt"], weights_only=True)
    payload["g_ema"] = {k: v.clone().fill_(float("nan")) if v.is_floating_point() else v
                        for k, v in payload["g_ema"].items()}
    atomic_save(payload, tmp_path / "nan.pth")
    out = tmp_path / "nan_out"
    assert reconstruction.main(["--resume", str(tmp_path / "nan.pth")] + common[2:] + ["--out", str(out)]) == 2
    _one_error_line(capsys, "NaN")
    assert not out.exists() or not list(out.glob("*.png"))


# ------------------------------------------------------------------- 5, 8. crafted checkpoints are bounded
def _zip_bomb(path: Path) -> None:
    """A torch.save archive plus one deflated 32 MB entry of zeros (about 32 KB on disk)."""
    torch.save({"w": torch.zeros(2)}, path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(zf.namelist()[0].split("/")[0] + "/data/bomb", "w") as f:  # inside torch's record folder
            chunk = bytes(1 << 20)
            for _ in range(32):
                f.write(chunk)


@pytest.mark.parametrize("case", ["no_e_ema", "list_model_config", "huge_channels", "config_int_limit",
                                  "zip_bomb"])
def test_crafted_checkpoint_is_one_line(work, tmp_path, capsys, case):
    import reconstruction
    from model.checkpoint import atomic_save, load_models
    from utils.errors import CheckpointError

    bad = tmp_path / f"{case}.pth"
    if case == "zip_bomb":
        _zip_bomb(bad)
        assert bad.stat().st_size < 1 << 20
    else:
        payload = torch.load(work["ckpt"], weights_only=True)
        if case == "no_e_ema":
            del payload["e_ema"]
        elif case == "list_model_config":
            payload["model_config"] = ["arch"]
        elif case == "huge_channels":  # a 3 GB first conv from one number, refused before allocation
            payload["model_config"]["encoder"]["channel"] = 1 << 19
            payload["model_config"]["encoder"]["channel_max"] = 1 << 19
        else:
            payload["model_config"]["generator"]["channel_base"] = 1 << 40
        atomic_save(payload, bad)
    with pytest.raises(CheckpointError, match={"zip_bomb": "uncompressed", "no_e_ema": "e_ema",
                                              "list_model_config": "model_config"}.get(case, "configuration")):
        load_models(bad)
    assert reconstruction.main(["--resume", str(bad), "--device", "cpu", "--data_path", str(work["faces"]),
                                "--out", str(tmp_path / "out")]) == 2
    _one_error_line(capsys, str(bad))


# ---------------------------------------------------------------------------- 8. bad config values
DEEP = json.dumps({"x": 1})[:-1] + ', "deep": ' + "[" * 100000 + "]" * 100000 + "}"


@pytest.mark.parametrize("blocks,words", [
    ({"data_set": {"type": "SynthFaces", "args": {**TINY["data_set"]["args"], "num_train": -5}}},
     ["data_set.args.num_train", ">= 0"]),
    ({"trainer": {"log_period": 0}}, ["trainer.log_period", ">= 1"]),
    ({"data_loader": {"num_workers": -1}}, ["data_loader.num_workers", ">= 0"]),
    ({"optimizer_G": {"lr": float("nan")}}, ["optimizer_G.lr", "> 0"]),
    ({"data_set": {"type": "SynthFaces", "args": {**TINY["data_set"]["args"], "size": 64}}},
     ["data_set.args.size", "64", "32"]),
    ({"trainer": {"monitor": "min fid"}}, ["trainer.monitor", "fid", "avg_mse"]),
    ({"loss": {"r1": -1}}, ["loss.r1", ">= 0"]),
    ("deep", ["nests deeper"]),
])
def test_bad_config_value_is_one_line_naming_key_and_range(tmp_path, capsys, blocks, words):
    path = tmp_path / "bad.json"
    if blocks == "deep":
        path.write_text(DEEP)
    else:
        _write_config(path, **blocks)
    assert run_train(["-c", str(path), "--iters", "1", "--device", "cpu", "--save_dir", str(tmp_path / "s")],
                     tmp_path) == 2
    _one_error_line(capsys, *words)


def test_save_dir_that_is_a_file_is_one_line(work, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert run_train(["-c", str(work["cfg"]), "--iters", "1", "--device", "cpu", "--save_dir", str(tmp_path / "f")],
                     tmp_path) == 2
    _one_error_line(capsys, "is a file")
