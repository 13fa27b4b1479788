"""The compare command (evaluation/compare.py): metric values of image folders, the release's
batch weighting, one ``error:`` line for bad input, and no code from a metric network file runs
unless trusted (hostile inputs, issue 15)."""
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from evaluation import metrics as M
from tests.helpers import ROOT, SIZE, one_error_line, save_faces


# ------------------------------------------------------------------------------------- compare CLI
def _write(folder: Path, name: str, value: int, size: int = SIZE, box=None, box_value=None):
    folder.mkdir(parents=True, exist_ok=True)
    a = np.full((size, size, 3), value, np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        a[y0:y1, x0:x1] = box_value
    Image.fromarray(a).save(folder / name)


@pytest.mark.slow
def test_compare_cli_values_and_errors(tmp_path, capsys, monkeypatch):
    from evaluation.compare import main

    real, fake = tmp_path / "real", tmp_path / "fake"
    mouth = M.metric_boxes(SIZE)[3]
    for stem in ("a", "b", "c"):
        _write(real, f"{stem}.png", 100)
    _write(fake, "a.png", 110)
    _write(fake, "b.jpg", 110)  # pairs by stem across formats (JPEG keeps flat colours exact)
    _write(fake, "d.png", 110)  # no counterpart
    out = tmp_path / "r.json"
    # Flat colours: the project's earlier conventions (no min-max, scikit-image SSIM) have closed forms.
    assert main(["--real", str(real), "--fake", str(fake), "--metrics", "mse,psnr,ssim", "--json", str(out),
                 "--no_minmax", "--ssim_variant", "skimage"]) == 0
    res = json.loads(out.read_text())
    assert res["pairs"] == 2 and res["batch_size"] == 8 and res["conventions"]["minmax"] is False
    d = 10 / 127.5
    assert res["metrics"]["mse"] == pytest.approx(d * d, rel=1e-6)
    assert res["metrics"]["psnr"] == pytest.approx(20 * math.log10(25.5), rel=1e-6)
    m1, m2, c1 = 100 / 255, 110 / 255, 1e-4
    assert res["metrics"]["ssim"] == pytest.approx((2 * m1 * m2 + c1) / (m1 ** 2 + m2 ** 2 + c1), rel=1e-5)
    assert "no counterpart" in capsys.readouterr().err

    # An edit confined to the mouth box: MSE_irr 0 for mouth, > 0 when the nose is named.
    src, edit = tmp_path / "src", tmp_path / "edit"
    _write(src, "x.png", 90)
    _write(edit, "x.png", 90, box=mouth, box_value=200)
    assert main(["--real", str(src), "--fake", str(edit), "--components", "mouth", "--metrics", "mse",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())["metrics"]
    assert res["mse_irr"] == 0.0 and res["mse"] > 0
    assert main(["--real", str(src), "--fake", str(edit), "--metrics", "mse_irr", "--components", "nose",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["mse_irr"] > 0

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for argv, msg in (
            (["--metrics", "mse,sharpness"], "unknown metric 'sharpness'"),
            (["--metrics", "mse_irr"], "needs --components"),
            (["--metrics", "fid"], "pt_inception-2015-12-05-6726825d.pth"),
            (["--metrics", "arc_dis"], "Arc-dis needs an ArcFace model"),
            (["--metrics", "ifg"], "--discriminator"),
            (["--components", "ears"], "unknown component 'ears'")):
        capsys.readouterr()
        assert main(["--real", str(real), "--fake", str(fake)] + argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and msg in err[0], (argv, err)
    capsys.readouterr()
    assert main(["--real", str(tmp_path / "nowhere"), "--fake", str(fake)]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--real", str(empty), "--fake", str(fake)]) == 2
    assert "counterpart" in capsys.readouterr().err
    # The real command: exit status 2 and no traceback.
    proc = subprocess.run([sys.executable, "-m", "evaluation.compare", "--real", str(empty), "--fake", str(fake)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.startswith("error:")


def test_compare_weights_batches_by_size_in_list_order(tmp_path):
    """Three pairs, batch 2: batches {p0, p1} and {p2}; the release reports sum(v_b * n_b) / N."""
    from evaluation.compare import main

    real, fake = tmp_path / "real", tmp_path / "fake"
    rng = np.random.default_rng(0)
    imgs = {}
    for stem in ("7070", "29960", "12"):
        a = rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-60, 61, a.shape), 0, 255).astype(np.uint8)
        real.mkdir(exist_ok=True)
        fake.mkdir(exist_ok=True)
        Image.fromarray(a).save(real / f"{stem}.png")
        Image.fromarray(b).save(fake / f"{stem}.png")
        imgs[stem] = (torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1,
                      torch.from_numpy(b).permute(2, 0, 1)[None].float() / 127.5 - 1)
    order = ["29960", "07070", "12"]  # a list in the release's spelling (zero-padded id included)
    lst = tmp_path / "test.txt"
    lst.write_text("29960.jpg\n07070\n00012\n")
    batches = [order[:2], order[2:]]
    expect = {}
    for m, fn in (("mse", M.mse), ("psnr", M.psnr), ("ssim", M.ssim)):
        vals = [fn(torch.cat([imgs[str(int(k))][0] for k in b]), torch.cat([imgs[str(int(k))][1] for k in b]))
                for b in batches]
        expect[m] = ((vals[0] * 2 + vals[1]) / 3, (vals[0] + vals[1]) / 2)
    out = tmp_path / "r.json"
    assert main(["--real", str(real), "--fake", str(fake), "--batch_size", "2", "--list", str(lst),
                 "--json", str(out)]) == 0
    got = json.loads(out.read_text())["metrics"]
    for m in expect:
        assert got[m] == pytest.approx(expect[m][0], rel=1e-9), m
    assert main(["--real", str(real), "--fake", str(fake), "--batch_size", "2", "--list", str(lst),
                 "--unweighted_batches", "--json", str(out)]) == 0
    got = json.loads(out.read_text())["metrics"]
    for m in expect:
        assert got[m] == pytest.approx(expect[m][1], rel=1e-9), m
    assert expect["psnr"][0] != pytest.approx(expect["psnr"][1], rel=1e-6)


# -------------------------------------------------------------------- no code from a file runs
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
def test_torchscript_metric_network_never_runs(tmp_path, capsys):
    from evaluation import compare

    victim = tmp_path / "victim.txt"
    victim.write_text("safe")
    torch.jit.script(_WritesOnLoad(str(victim))).save(str(tmp_path / "evil.ts"))
    assert victim.read_text() == "safe"
    faces = str(save_faces(tmp_path / "faces"))
    for flags in (["--metrics", "ifg", "--discriminator"], ["--metrics", "arc_dis", "--arcface"]):
        assert compare.main(["--real", faces, "--fake", faces, *flags, str(tmp_path / "evil.ts")]) == 2
        one_error_line(capsys, "TorchScript", "--trust_code")
    assert victim.read_text() == "safe"


# ------------------------------------------------------------- nothing lost, no silent self-comparison
def test_json_never_overwrites_an_input(tmp_path, capsys):
    """--json naming an input (an image of either folder, paired or not, the list file; also through
    a symbolic link) or an image name inside an input folder is refused with one line before any
    work, and the inputs are untouched (issue 24)."""
    from evaluation.compare import main

    real, fake = tmp_path / "real", tmp_path / "fake"
    for stem in ("a", "b"):
        _write(real, f"{stem}.png", 100)
        _write(fake, f"{stem}.png", 110)
    _write(fake, "lonely.png", 120)  # no counterpart: still an input file
    lst = tmp_path / "list.txt"
    lst.write_text("a\nb\n")
    (tmp_path / "link.png").symlink_to(real / "a.png")
    before = {p: p.read_bytes() for p in [*real.iterdir(), *fake.iterdir(), lst]}
    for target, words in ((real / "a.png", "is the input"), (fake / "b.png", "is the input"),
                          (fake / "lonely.png", "is the input"), (lst, "is the input"),
                          (tmp_path / "link.png", "is the input"), (real / "new.png", "inside the input folder"),
                          (tmp_path / "real" / ".." / "fake" / "a.png", "is the input")):
        assert main(["--real", str(real), "--fake", str(fake), "--list", str(lst), "--json", str(target)]) == 2
        one_error_line(capsys, "--json", words)
    assert {p: p.read_bytes() for p in before} == before
    assert not (real / "new.png").exists()
    # A JSON file beside them is written (atomically: no temporary file is left).
    assert main(["--real", str(real), "--fake", str(fake), "--json", str(real / "r.json")]) == 0
    assert json.loads((real / "r.json").read_text())["pairs"] == 2
    assert sorted(p.name for p in real.iterdir()) == ["a.png", "b.png", "r.json"]


def test_same_folder_twice_gets_a_notice(tmp_path, capsys):
    """--real X --fake X (or the same folder spelled another way) still reports, with one notice
    that every image is compared with itself; different folders with equal images get none."""
    from evaluation.compare import main

    real = tmp_path / "real"
    _write(real, "a.png", 100)
    _write(real, "b.png", 50)
    for fake in (real, tmp_path / "real" / ".." / "real"):
        assert main(["--real", str(real), "--fake", str(fake)]) == 0
        out = capsys.readouterr()
        notices = [line for line in out.err.splitlines() if line.startswith("notice:")]
        assert len(notices) == 1 and "--real and --fake are the same folder" in notices[0], out.err
        assert "psnr     100" in out.out
    copy = tmp_path / "copy"
    _write(copy, "a.png", 100)
    _write(copy, "b.png", 50)
    assert main(["--real", str(real), "--fake", str(copy)]) == 0
    assert "notice" not in capsys.readouterr().err
