"""Tests for model/official_checkpoint.py: safe loading of released IA-FaceS checkpoints.

Malicious files are built here with ``torch.save`` / ``pickle`` from objects whose
``__reduce__`` would run a payload (each payload only creates a marker file in
``tmp_path``).  The tests check that loading them raises ``CheckpointError``
naming the refused global and that the marker never appears.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pathlib
import pickle
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from model.official_checkpoint import (
    CheckpointError,
    ConfigParserState,
    OFFICIAL_EXTRA_GLOBALS,
    is_official_checkpoint,
    load_checkpoint_file,
    load_official_checkpoint,
)
from tests.helpers import REFERENCE

SAMPLE = REFERENCE / "official_checkpoint_format_sample.pth"


@pytest.fixture(scope="module")
def sample_path() -> Path:
    assert SAMPLE.is_file(), (
        f"reference sample {SAMPLE} is missing; it ships with the shared reference data "
        f"(<repo>/../shared/reference/, or IAFACES_REFERENCE) and must be present"
    )
    return SAMPLE


@pytest.fixture(scope="module")
def sample(sample_path):
    return load_official_checkpoint(sample_path)


# --------------------------------------------------------------------------- payload helpers


_SYSTEM = f"{os.system.__module__}.system"  # posix.system on Linux/macOS


def _write_marker(path: str) -> int:
    """The 'malicious' action: create a file.  Module-level so pickle can reference it."""
    Path(path).write_text("pwned")
    return 0


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _assert_one_line(err: CheckpointError, path) -> str:
    msg = str(err)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


@pytest.fixture
def fake_parse_config(monkeypatch):
    """Install an importable ``parse_config`` module so checkpoints of the official
    layout can be *written* in tests (the loader must never need it)."""
    mod = types.ModuleType("parse_config")

    class ConfigParser:
        pass

    ConfigParser.__module__ = "parse_config"
    ConfigParser.__qualname__ = "ConfigParser"
    mod.ConfigParser = ConfigParser
    monkeypatch.setitem(sys.modules, "parse_config", mod)
    return mod


def _make_config_parser(cls, config, **members):
    cp = cls.__new__(cls)
    cp._config = config
    cp.resume = None
    cp._save_dir = pathlib.PosixPath("saved/models/x/0101_000000")
    cp._log_dir = pathlib.PosixPath("saved/log/x/0101_000000")
    cp.log_levels = {0: 30, 1: 20, 2: 10}
    for k, v in members.items():
        setattr(cp, k, v)
    return cp


def _official_layout(config_obj):
    sd = OrderedDict([("w", torch.arange(6, dtype=torch.float32).reshape(2, 3))])
    return {
        "epoch": 3,
        "iteration": 10,
        "state_dict_E": sd,
        "state_dict_G": sd,
        "e_ema": sd,
        "g_ema": sd,
        "config": config_obj,
        "avg_mse": torch.tensor(0.5),
    }


# --------------------------------------------------------------------------- the reference sample


def test_sample_config_and_metadata(sample):
    cfg = sample["config"]
    assert type(cfg) is dict
    assert cfg["model_arch"] == "iafaces_256"
    assert cfg["exp_id"] == "iafaces-celebahq"
    assert cfg["encoder"]["args"]["img_size"] == 256
    assert cfg["encoder"]["args"]["feats_dim"] == 256
    assert cfg["generator"]["args"]["style_dim"] == 1024
    assert cfg["data_set"]["args"]["image_size"] == [256, 256]
    assert cfg["trainer"]["monitor"] == "min avg_mse"
    # plain nested dicts all the way down, and JSON-serialisable
    assert type(cfg["encoder"]) is dict and type(cfg["encoder"]["args"]) is dict
    assert json.loads(json.dumps(cfg)) == cfg
    assert sample["epoch"] == 200
    assert sample["iteration"] == 337400
    assert isinstance(sample["avg_mse"], float)
    assert sample["avg_mse"] == pytest.approx(0.0123, rel=1e-5)


def test_sample_state_dicts(sample):
    expected = {
        "state_dict_D": {"convs.0.0.weight": (64, 3, 1, 1)},
        "state_dict_G": {"conv1.conv.weight": (1, 4, 4, 3, 3)},
        "state_dict_E": {"layers.0.bias": (4,)},
        "e_ema": {"layers.0.bias": (4,)},
        "g_ema": {"conv1.conv.weight": (1, 4, 4, 3, 3), "noises.noise_0": (1, 1, 8, 8)},
    }
    for key, shapes in expected.items():
        sd = sample[key]
        assert type(sd) is dict, key
        assert {k: tuple(v.shape) for k, v in sd.items()} == shapes, key
        for t in sd.values():
            assert isinstance(t, torch.Tensor) and t.device.type == "cpu"
            assert t.dtype == torch.float32


def test_sample_extra_members_and_optimizers(sample):
    extra = sample["extra"]
    assert extra["_save_dir"] == "saved/models/iafaces-celebahq/0412_101010"
    assert extra["_log_dir"] == "saved/log/iafaces-celebahq/0412_101010"
    assert type(extra["_save_dir"]) is str and type(extra["_log_dir"]) is str
    assert extra["resume"] is None
    assert extra["log_levels"] == {0: 30, 1: 20, 2: 10}
    assert "_config" not in extra
    assert sample["optimizer_G"]["param_groups"][0]["lr"] == pytest.approx(0.002)
    assert sample["optimizer_D"]["param_groups"][0]["betas"][1] == pytest.approx(0.9905854573074332)


def test_raw_load_uses_inert_stand_ins(sample_path):
    raw = load_checkpoint_file(sample_path)
    assert set(raw) == {
        "epoch", "iteration", "state_dict_D", "state_dict_G", "state_dict_E",
        "e_ema", "g_ema", "optimizer_G", "optimizer_D", "config", "avg_mse",
    }
    assert type(raw["config"]) is ConfigParserState
    assert type(raw["config"].state["_save_dir"]) is str
    assert is_official_checkpoint(raw)
    assert not is_official_checkpoint({"e_ema": {}, "g_ema": {}})
    assert not is_official_checkpoint(torch.zeros(1))


def test_allow_list_is_scoped_to_the_load(sample_path):
    # torch keeps the registered globals in a set: compare contents, not iteration order (other
    # parts of torch may have registered globals of their own before this test).
    before = set(torch.serialization.get_safe_globals())
    load_official_checkpoint(sample_path)
    after = set(torch.serialization.get_safe_globals())
    assert after == before
    stand_ins = {obj for obj, _ in OFFICIAL_EXTRA_GLOBALS}
    assert not stand_ins & {g[0] if isinstance(g, tuple) else g for g in after}
    # Without our allow-list, torch's weights-only load refuses the file: the extra
    # globals are really needed and really not registered globally.
    with pytest.raises(pickle.UnpicklingError, match="parse_config"):
        torch.load(sample_path, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------- round trips


def test_written_official_layout_roundtrip_with_windows_path(tmp_path, fake_parse_config):
    cfg = OrderedDict(model_arch="iafaces_256", nested=OrderedDict(a=(1, 2), b=OrderedDict(c=None)))
    cp = _make_config_parser(
        fake_parse_config.ConfigParser, cfg, win=pathlib.PureWindowsPath("C:/ckpt/run1")
    )
    f = tmp_path / "official_like.pth"
    torch.save(_official_layout(cp), f)
    ops = {op.name for op, _, _ in __import__("pickletools").genops(zipfile.ZipFile(f).read("official_like/data.pkl"))}
    assert {"NEWOBJ", "BUILD"} <= ops  # same construction as the released files
    ck = load_official_checkpoint(f)
    assert ck["config"] == {"model_arch": "iafaces_256", "nested": {"a": [1, 2], "b": {"c": None}}}
    assert type(ck["config"]["nested"]) is dict
    assert ck["extra"]["_save_dir"] == "saved/models/x/0101_000000"
    assert ck["extra"]["win"] == "C:\\ckpt\\run1"
    assert torch.equal(ck["g_ema"]["w"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert ck["avg_mse"] == 0.5 and ck["epoch"] == 3
    assert "state_dict_D" not in ck


def test_real_parse_config_class_is_never_used(tmp_path, fake_parse_config):
    """Even when a ``parse_config`` module is importable, the loader maps the name to
    its stand-in: the (here booby-trapped) real class's methods never run."""
    marker = tmp_path / "setstate_ran"
    cls = fake_parse_config.ConfigParser

    def __setstate__(self, state):
        _write_marker(str(marker))
        self.__dict__.update(state)

    cp = _make_config_parser(cls, OrderedDict(model_arch="iafaces_256"))
    f = tmp_path / "trap.pth"
    torch.save(_official_layout(cp), f)
    cls.__setstate__ = __setstate__  # after saving, so only an unsafe load would call it
    ck = load_official_checkpoint(f)
    assert ck["config"] == {"model_arch": "iafaces_256"}
    assert not marker.exists()


def test_plain_dict_config_resaved_by_user(tmp_path, sample):
    f = tmp_path / "resaved.pth"
    torch.save({"config": sample["config"], "e_ema": sample["e_ema"], "g_ema": sample["g_ema"]}, f)
    ck = load_official_checkpoint(f)
    assert ck["config"] == sample["config"]
    assert ck["extra"] == {}
    assert torch.equal(ck["g_ema"]["noises.noise_0"], sample["g_ema"]["noises.noise_0"])
    assert "epoch" not in ck and "state_dict_D" not in ck


@pytest.mark.parametrize("legacy", [False, True])
def test_project_plain_checkpoint_loads(tmp_path, legacy):
    obj = {"model": {"w": torch.randn(3, 2)}, "step": 7, "cfg": {"lr": 1e-3}}
    f = tmp_path / "own.pt"
    torch.save(obj, f, _use_new_zipfile_serialization=not legacy)
    out = load_checkpoint_file(f)
    assert out["step"] == 7 and out["cfg"] == {"lr": 1e-3}
    assert torch.equal(out["model"]["w"], obj["model"]["w"])


def test_missing_required_keys(tmp_path):
    f = tmp_path / "other.pth"
    torch.save({"e_ema": {"w": torch.zeros(1)}, "model": {}}, f)
    with pytest.raises(CheckpointError) as ei:
        load_official_checkpoint(f)
    msg = _assert_one_line(ei.value, f)
    assert "is not an IA-FaceS checkpoint: missing keys config, g_ema" in msg


def test_top_level_not_a_dict(tmp_path):
    f = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), f)
    with pytest.raises(CheckpointError, match="is not an IA-FaceS checkpoint"):
        load_official_checkpoint(f)


def test_malformed_state_dict(tmp_path):
    f = tmp_path / "bad_sd.pth"
    torch.save({"config": {}, "e_ema": {"w": 3}, "g_ema": {}}, f)
    with pytest.raises(CheckpointError, match="malformed 'e_ema'"):
        load_official_checkpoint(f)


# --------------------------------------------------------------------------- malicious files


def test_payload_is_live_under_an_unsafe_loader(tmp_path):
    """Control: the crafted file really runs its payload when loaded unsafely, so the
    refusal tests below are meaningful (our own harmless file, in tmp_path)."""
    marker = tmp_path / "control"
    f = tmp_path / "control.pth"
    torch.save({"config": {}, "e_ema": _Reduce(_write_marker, (str(marker),)), "g_ema": {}}, f)
    torch.load(f, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    "make, refused",
    [
        (lambda m: _Reduce(os.system, (f"touch {m}",)), _SYSTEM),
        (lambda m: _Reduce(_write_marker, (str(m),)), f"{__name__}._write_marker"),
        (lambda m: _Reduce(builtins.exec, (f"open({str(m)!r}, 'w').close()",)), "builtins.exec"),
        (lambda m: _Reduce(subprocess.call, (["touch", str(m)],)), "subprocess.call"),
        # pathlib.PosixPath is allow-listed (as a str stand-in); that must not open
        # a path to its methods: they pickle through builtins.getattr, which is refused.
        (lambda m: _Reduce(pathlib.Path.write_text, (pathlib.Path(m), "x")), "builtins.getattr"),
    ],
    ids=["os.system", "module_function", "exec", "subprocess", "pathlib_method"],
)
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_malicious_top_level_payload_refused(tmp_path, make, refused, legacy):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.pth"
    obj = {"config": {}, "e_ema": make(marker), "g_ema": {}}
    torch.save(obj, f, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError) as ei:
        load_official_checkpoint(f)
    msg = _assert_one_line(ei.value, f)
    assert f"contains a disallowed object '{refused}'" in msg
    assert "could run code" in msg
    assert not marker.exists()


def _config_payload(kind: str, marker: Path) -> _Reduce:
    if kind == "builtins.eval":
        return _Reduce(builtins.eval, (f"__import__('pathlib').Path({str(marker)!r}).touch()",))
    if kind == "subprocess.call":
        return _Reduce(subprocess.call, (["touch", str(marker)],))
    return _Reduce(os.system, (f"touch {marker}",))


@pytest.mark.parametrize(
    "where, refused",
    [("_config", "builtins.eval"), ("_save_dir", "subprocess.call"), ("resume", _SYSTEM)],
)
def test_payload_inside_config_parser_state_refused(tmp_path, fake_parse_config, where, refused):
    marker = tmp_path / "pwned"
    payload = _config_payload(refused, marker)
    cfg = OrderedDict(model_arch="iafaces_256")
    if where == "_config":
        cfg["encoder"] = OrderedDict(args=payload)
        cp = _make_config_parser(fake_parse_config.ConfigParser, cfg)
    else:
        cp = _make_config_parser(fake_parse_config.ConfigParser, cfg, **{where: payload})
    f = tmp_path / "evil_config.pth"
    torch.save(_official_layout(cp), f)
    with pytest.raises(CheckpointError) as ei:
        load_official_checkpoint(f)
    assert f"disallowed object '{refused}'" in _assert_one_line(ei.value, f)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_unsupported_pickle_protocol_payload_refused(tmp_path, legacy):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil_p4.pth"
    torch.save(_Reduce(_write_marker, (str(marker),)), f, pickle_protocol=4,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint_file(f)
    msg = _assert_one_line(ei.value, f)
    assert "_write_marker" in msg or "weights-only load refuses" in msg
    assert not marker.exists()


def _torch_zip_with_pickle(path: Path, pkl: bytes) -> Path:
    """A minimal torch zip checkpoint whose data.pkl is the given hand-written pickle."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
    return path


def _u(s: str) -> bytes:  # BINUNICODE
    b = s.encode()
    return b"X" + len(b).to_bytes(4, "little") + b


def test_hand_written_pickle_control_loads(tmp_path):
    f = _torch_zip_with_pickle(tmp_path / "ok.pth", b"\x80\x02}" + _u("a") + b"K\x07s.")
    assert load_checkpoint_file(f) == {"a": 7}


@pytest.mark.parametrize(
    "pkl, expected",
    [
        # ConfigParser called with arguments instead of NEWOBJ ()
        (b"\x80\x02cparse_config\nConfigParser\n(K\x01tR.", "constructed with arguments"),
        # ConfigParser BUILD with a non-dict state
        (b"\x80\x02cparse_config\nConfigParser\n)\x81]b.", "state has type list"),
        # path stand-in fed a non-string
        (b"\x80\x02cpathlib\nPosixPath\n(K\x01tR.", "part has type int"),
        # BUILD on the str a path stand-in returns (would set attributes on it)
        (b"\x80\x02cpathlib\nPosixPath\n(" + _u("a") + b"tR}" + _u("x") + b"K\x01sb.", "Can only build"),
    ],
    ids=["configparser_args", "configparser_state", "path_nonstr", "build_on_path"],
)
def test_stand_ins_cannot_be_abused(tmp_path, pkl, expected):
    f = _torch_zip_with_pickle(tmp_path / "crafted.pth", pkl)
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint_file(f)
    msg = _assert_one_line(ei.value, f)
    assert "could not be loaded safely" in msg and expected in msg


def test_raw_pickle_payload_is_not_even_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "raw.pkl"
    f.write_bytes(pickle.dumps(_Reduce(_write_marker, (str(marker),)), protocol=2))
    with pytest.raises(CheckpointError) as ei:
        load_official_checkpoint(f)
    assert "is not a PyTorch checkpoint (expected a file saved by torch.save)" in _assert_one_line(ei.value, f)
    assert not marker.exists()


# --------------------------------------------------------------------------- broken / foreign files


def _err(path) -> str:
    with pytest.raises(CheckpointError) as ei:
        load_official_checkpoint(path)
    return _assert_one_line(ei.value, path)


def test_truncated_zip(tmp_path, sample_path):
    data = sample_path.read_bytes()
    f = tmp_path / "half.pth"
    f.write_bytes(data[: len(data) // 2])
    msg = _err(f)
    assert "is truncated or corrupt" in msg and "download it again" in msg


def test_truncated_legacy(tmp_path, sample):
    buf = io.BytesIO()
    torch.save({"config": sample["config"], "e_ema": sample["e_ema"], "g_ema": sample["g_ema"]},
               buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    for cut in (len(data) // 3, len(data) - 10):
        f = tmp_path / f"legacy_{cut}.pth"
        f.write_bytes(data[:cut])
        msg = _err(f)
        assert "is truncated or corrupt" in msg and "download it again" in msg


def test_corrupted_pickle_inside_zip(tmp_path, sample_path):
    data = bytearray(sample_path.read_bytes())
    i = data.index(b"iafaces_256")
    data[i : i + 4] = b"\xff\xfe\xfd\xfc"
    f = tmp_path / "flipped.pth"
    f.write_bytes(bytes(data))
    msg = _err(f)
    assert "is truncated or corrupt" in msg and "CRC" in msg


def test_random_bytes(tmp_path):
    import random

    f = tmp_path / "random.pth"
    f.write_bytes(bytes(random.Random(0).getrandbits(8) for _ in range(4096)))
    assert "is not a PyTorch checkpoint (expected a file saved by torch.save)" in _err(f)


def test_png_file(tmp_path):
    f = tmp_path / "face.png"
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64))
    msg = _err(f)
    assert "is not a PyTorch checkpoint" in msg and "PNG image" in msg


def test_text_and_html_files(tmp_path):
    txt = tmp_path / "notes.pth"
    txt.write_text("this is not a checkpoint\n")
    msg = _err(txt)
    assert "is not a PyTorch checkpoint" in msg and "text file" in msg
    html = tmp_path / "download.pth"
    html.write_text("<!DOCTYPE html><html><body>Google Drive - Virus scan warning</body></html>")
    msg = _err(html)
    assert "is not a PyTorch checkpoint" in msg and "HTML page" in msg


def test_zip_that_is_not_a_checkpoint(tmp_path):
    f = tmp_path / "bundle.zip"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("README.txt", "hello")
    assert "is a zip archive but not a PyTorch checkpoint" in _err(f)


def test_missing_empty_and_directory(tmp_path):
    missing = tmp_path / "nope.pth"
    assert "does not exist" in _err(missing)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert "is empty; download it again" in _err(empty)
    assert "is a directory" in _err(tmp_path)


def test_error_is_a_value_error(tmp_path):
    with pytest.raises(ValueError):
        load_checkpoint_file(tmp_path / "nope.pth")
