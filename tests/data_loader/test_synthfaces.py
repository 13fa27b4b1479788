"""Tests of the SynthFaces generator, its labels, counterfactuals, export and dataset."""
import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from data_loader.attributes import read_attribute_file, write_attribute_file
from data_loader.synthfaces import (ATTRIBUTE_COMPONENTS, ATTRIBUTES, Factors, attribute_vector, attributes,
                                    flip_attribute, render, sample_factors, transfer)
from data_loader.synthfaces.export import export
from data_loader.synthfaces.render import render_float
from model.boxes import COMPONENTS, image_boxes
from tests.helpers import ROOT
SEED = 7


def pixel_rect(name, size):
    """Pixels overlapping the scaled canonical box, computed independently of the renderer."""
    x0, y0, x1, y1 = image_boxes(size)[COMPONENTS.index(name)]
    return math.floor(y0), math.ceil(y1), math.floor(x0), math.ceil(x1)


def outside(mask, rects):
    keep = np.ones_like(mask, dtype=bool)
    for r0, r1, c0, c1 in rects:
        keep[r0:r1, c0:c1] = False
    return mask & keep


def changed(a, b):
    return np.any(a != b, axis=-1)


def extreme(f, sgn):
    """Factors pushing every component to its largest extent and jitter in one direction."""
    def eye(e):
        return dataclasses.replace(e, openness=1.0, size=1.0, iris_size=1.0, lashes=1.0, brow_thickness=1.0,
                                   brow_arch=1.0, brow_height=1.0 if sgn < 0 else 0.0, bags=1.0,
                                   dx=7.0 * sgn, dy=7.0 * sgn, gaze_x=float(sgn), gaze_y=float(sgn))
    nose = dataclasses.replace(f.nose, length=1.0, width=1.0, pointy=1.0, shade=1.0, freckles=1.0,
                               dx=7.0 * sgn, dy=7.0 * sgn)
    mouth = dataclasses.replace(f.mouth, openness=1.0, smile=1.0, width=1.0, lip_thickness=1.0, beard=1.0,
                                mustache=1.0, dx=7.0 * sgn, dy=7.0 * sgn)
    return dataclasses.replace(f, l_eye=eye(f.l_eye), r_eye=eye(f.r_eye), nose=nose, mouth=mouth)


# ----------------------------------------------------------------------------------------------
def test_deterministic_and_distinct():
    f = sample_factors(SEED, 3)
    assert f == sample_factors(SEED, 3)
    a = render(f, 64)
    assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
    assert np.array_equal(a, render(sample_factors(SEED, 3), 64))
    assert not np.array_equal(a, render(sample_factors(SEED + 1, 3), 64))
    assert not np.array_equal(a, render(sample_factors(SEED, 4), 64))
    # factors survive a JSON round trip exactly
    assert Factors.from_dict(json.loads(json.dumps(f.to_dict()))) == f
    for size in (32, 48, 1024):
        assert render(f, size).shape == (size, size, 3)


def test_images_are_antialiased():
    """The 128-px render is close to a 4x4-supersampled 512-px render, much closer than point
    sampling (what an aliased renderer would produce)."""
    for i in range(3):
        f = sample_factors(SEED, i)
        small = render(f, 128).astype(float)
        big = render(f, 512).astype(float)
        supersampled = big.reshape(128, 4, 128, 4, 3).mean(axis=(1, 3))
        point_sampled = big[1::4, 1::4]
        err = np.abs(small - supersampled).mean()
        aliased = np.abs(point_sampled - supersampled).mean()
        assert err < 0.75 * aliased, (i, err, aliased)


@pytest.mark.parametrize("size", [32, 64, 256])
def test_component_pixels_inside_box(size):
    for i in range(4):
        for f in (sample_factors(SEED, i), extreme(sample_factors(SEED, i), 1 if i % 2 else -1)):
            full = render(f, size)
            for c in COMPONENTS:
                diff = changed(full, render(f, size, omit=(c,)))
                assert diff.any(), f"{c} not visible in face {i}"
                assert not outside(diff, [pixel_rect(c, size)]).any(), f"{c} of face {i} leaves its box"


def test_components_not_clipped_by_box():
    """Even at extreme factors no component reaches the border ring of its box (no cut-off shapes)."""
    for i in range(3):
        for sgn in (-1, 1):
            f = extreme(sample_factors(SEED, i), sgn)
            full = render_float(f, 256).copy()
            for c in COMPONENTS:
                d = np.abs(full - render_float(f, 256, omit=(c,))).max(-1)
                r0, r1, c0, c1 = pixel_rect(c, 256)
                ring = np.concatenate([d[r0, c0:c1], d[r1 - 1, c0:c1], d[r0:r1, c0], d[r0:r1, c1 - 1]])
                assert d.max() > 0.2 and ring.max() < 0.01, (c, i, sgn, ring.max())


@pytest.mark.parametrize("component", COMPONENTS)
def test_transfer_changes_only_the_box(component):
    size = 64
    n_changed = 0
    for i in range(5):
        tgt, ref = sample_factors(SEED, i), sample_factors(SEED, 100 + i)
        cf = transfer(tgt, ref, [component])
        assert getattr(cf, component) == getattr(ref, component)
        assert all(getattr(cf, c) == getattr(tgt, c) for c in COMPONENTS if c != component)
        assert cf.glob == tgt.glob
        diff = changed(render(tgt, size), render(cf, size))
        n_changed += int(diff.sum())
        assert not outside(diff, [pixel_rect(component, size)]).any()
    assert n_changed > 0


def test_transfer_groups_and_errors():
    a, b = sample_factors(SEED, 1), sample_factors(SEED, 2)
    eyes = transfer(a, b, "eyes")
    assert eyes.l_eye == b.l_eye and eyes.r_eye == b.r_eye and eyes.nose == a.nose and eyes.mouth == a.mouth
    assert transfer(a, b, "all") == dataclasses.replace(b, glob=a.glob)
    with pytest.raises(ValueError, match="unknown component"):
        transfer(a, b, ["chin"])


# Independent statement of the labelling rules: (factor getter, threshold, positive when above).
def _mean(*vals):
    return sum(vals) / len(vals)


RULES = {
    "Mouth_Slightly_Open": (lambda f: f.mouth.openness, 0.35, True),
    "Smiling": (lambda f: f.mouth.smile, 0.5, True),
    "Bushy_Eyebrows": (lambda f: _mean(f.l_eye.brow_thickness, f.r_eye.brow_thickness), 0.6, True),
    "Arched_Eyebrows": (lambda f: _mean(f.l_eye.brow_arch, f.r_eye.brow_arch), 0.6, True),
    "Narrow_Eyes": (lambda f: _mean(f.l_eye.openness, f.r_eye.openness), 0.4, False),
    "Bags_Under_Eyes": (lambda f: _mean(f.l_eye.bags, f.r_eye.bags), 0.6, True),
    "Big_Nose": (lambda f: _mean(f.nose.length, f.nose.width), 0.6, True),
    "Pointy_Nose": (lambda f: f.nose.pointy, 0.6, True),
    "Big_Lips": (lambda f: f.mouth.lip_thickness, 0.6, True),
    "No_Beard": (lambda f: f.mouth.beard, 0.5, False),
    "Mustache": (lambda f: f.mouth.mustache, 0.5, True),
    "Eyeglasses": (lambda f: float(f.glob.glasses), 0.5, True),
    "Male": (lambda f: f.glob.male, 0.5, True),
    "Left_Eye_Closed": (lambda f: f.l_eye.openness, 0.15, False),
    "Right_Eye_Closed": (lambda f: f.r_eye.openness, 0.15, False),
}

# Factor fields each attribute may touch when flipped.
FLIP_FIELDS = {
    "Mouth_Slightly_Open": {("mouth", "openness")}, "Smiling": {("mouth", "smile")},
    "Bushy_Eyebrows": {("l_eye", "brow_thickness"), ("r_eye", "brow_thickness")},
    "Arched_Eyebrows": {("l_eye", "brow_arch"), ("r_eye", "brow_arch")},
    "Narrow_Eyes": {("l_eye", "openness"), ("r_eye", "openness")},
    "Bags_Under_Eyes": {("l_eye", "bags"), ("r_eye", "bags")},
    "Big_Nose": {("nose", "length"), ("nose", "width")}, "Pointy_Nose": {("nose", "pointy")},
    "Big_Lips": {("mouth", "lip_thickness")}, "No_Beard": {("mouth", "beard")},
    "Mustache": {("mouth", "mustache")}, "Eyeglasses": {("glob", "glasses")}, "Male": {("glob", "male")},
    "Left_Eye_Closed": {("l_eye", "openness")}, "Right_Eye_Closed": {("r_eye", "openness")},
}


def _label(f, name):
    get, thr, above = RULES[name]
    v = get(f)
    return v > thr if above else v < thr


def test_labels_agree_with_factors():
    assert set(RULES) == set(ATTRIBUTES) == set(ATTRIBUTE_COMPONENTS)
    counts = np.zeros(len(ATTRIBUTES))
    n = 600
    for i in range(n):
        f = sample_factors(SEED, i)
        vec = attribute_vector(f)
        expected = [_label(f, a) for a in ATTRIBUTES]
        assert vec.tolist() == [float(e) for e in expected]
        assert list(attributes(f).values()) == expected
        counts += vec
    rates = counts / n
    assert np.all(rates > 0.15) and np.all(rates < 0.85), dict(zip(ATTRIBUTES, rates.round(2)))


def test_correlations():
    fs = [sample_factors(SEED, i) for i in range(800)]
    lc = np.array([f.l_eye.openness < 0.15 for f in fs])
    rc = np.array([f.r_eye.openness < 0.15 for f in fs])
    agree = np.mean(np.abs(np.array([f.l_eye.brow_arch - f.r_eye.brow_arch for f in fs])) < 0.15)
    assert 0.75 < agree < 0.95  # eyes agree most of the time, not always
    assert 0.02 < np.mean(lc != rc) < 0.2  # some winks
    male = np.array([f.glob.male > 0.5 for f in fs])
    beard = np.array([f.mouth.beard > 0.5 for f in fs])
    hair = np.array([f.glob.hair_length for f in fs])
    assert beard[male].mean() > 0.4 > 0.1 > beard[~male].mean()
    assert hair[~male].mean() > hair[male].mean() + 0.3
    # eyebrow colour follows hair colour
    hc = np.array([f.glob.hair_color for f in fs]).mean(1)
    bc = np.array([f.l_eye.brow_color for f in fs]).mean(1)
    assert np.corrcoef(hc, bc)[0, 1] > 0.9


def test_flip_attribute_changes_label_factor_and_region():
    size = 64
    allc = [pixel_rect(c, size) for c in COMPONENTS]
    for i in range(6):
        f = sample_factors(SEED, i)
        base = render(f, size)
        labels = attributes(f)
        for name in ATTRIBUTES:
            assert flip_attribute(f, name, labels[name]) == f  # already there: unchanged
            g = flip_attribute(f, name, not labels[name])
            assert attributes(g)[name] == (not labels[name])
            da, db = f.to_dict(), g.to_dict()
            touched = {(p, k) for p in da for k in da[p] if da[p][k] != db[p][k]}
            assert touched and touched <= FLIP_FIELDS[name], (name, touched)
            diff = changed(base, render(g, size))
            assert diff.any(), name
            if name not in ("Eyeglasses", "Male"):
                rects = [pixel_rect(c, size) for c in ATTRIBUTE_COMPONENTS[name]]
                assert not outside(diff, rects).any(), name
            elif name == "Male":  # global factor: changes the head outside the boxes, not inside
                assert outside(diff, allc).any()
    with pytest.raises(ValueError, match="unknown attribute"):
        flip_attribute(sample_factors(SEED, 0), "Wearing_Hat", True)


def test_attribute_file_reader_tolerant_and_strict(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("2\n  A_b   C_d\t E \n0.jpg  1 -1   1\n\n1.jpg\t-1 -1 1   \n")
    names, table = read_attribute_file(p)
    assert names == ["A_b", "C_d", "E"]
    assert list(table) == ["0.jpg", "1.jpg"]
    assert table["0.jpg"].tolist() == [1, -1, 1] and table["1.jpg"].tolist() == [-1, -1, 1]
    p.write_text("2\nA B\n0.jpg 1 -1\n")
    with pytest.raises(ValueError, match="header says 2"):
        read_attribute_file(p)
    p.write_text("1\nA B\n0.jpg 1 0\n")
    with pytest.raises(ValueError, match="1 or -1"):
        read_attribute_file(p)
    p.write_text("1\nA B\n0.jpg 1\n")
    with pytest.raises(ValueError, match=":3:"):
        read_attribute_file(p)
    write_attribute_file(p, ["X", "Y"], {"5.jpg": [True, False], "6.jpg": [0, 1]})
    names, table = read_attribute_file(p)
    assert names == ["X", "Y"] and table["5.jpg"].tolist() == [1, -1] and table["6.jpg"].tolist() == [-1, 1]


@pytest.mark.parametrize("size,num", [(32, 12), (64, 4)])
def test_export_round_trip(tmp_path, size, num):
    out = tmp_path / "ds"
    export(str(out), num, size, SEED, progress=False)
    names, table = read_attribute_file(out / "CelebAMask-HQ-attribute-anno.txt")
    assert names == list(ATTRIBUTES)
    assert list(table) == [f"{i}.jpg" for i in range(num)]
    splits = {s: [int(x) for x in (out / f"{s}.txt").read_text().split()] for s in ("train", "val", "test")}
    all_ids = sum(splits.values(), [])
    assert sorted(all_ids) == list(range(num)) and len(set(all_ids)) == num
    if num >= 3:
        assert all(splits.values())
    meta = json.loads((out / "factors.json").read_text())
    assert meta["seed"] == SEED and meta["size"] == size
    for i in range(num):
        f = sample_factors(SEED, i)
        assert Factors.from_dict(meta["factors"][str(i)]) == f
        assert ((table[f"{i}.jpg"] + 1) // 2).tolist() == attribute_vector(f).astype(int).tolist()
        jpg = np.asarray(Image.open(out / "images" / f"{i}.jpg").convert("RGB")).astype(float)
        assert jpg.shape == (size, size, 3)
        err = np.abs(jpg - render(f, size)).mean()
        other = np.abs(jpg - render(sample_factors(SEED, i + num), size)).mean()
        assert err < (8.0 if size <= 32 else 4.0) and other > 3 * err, (err, other)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "data_loader.synthfaces", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_cli_export(tmp_path):
    r = _cli("--out", str(tmp_path / "x"), "--num", "3", "--size", "32", "--seed", "2", "--workers", "2")
    assert r.returncode == 0, r.stderr
    names, table = read_attribute_file(tmp_path / "x" / "CelebAMask-HQ-attribute-anno.txt")
    assert len(table) == 3 and sorted((tmp_path / "x" / "images").iterdir())


@pytest.mark.parametrize("args", [
    ["--size", "100"], ["--size", "2048"], ["--size", "16"], ["--size", "abc"], ["--num", "0"],
    ["--num", "-3"], ["--seed", "-1"], "unwritable",
])
def test_cli_bad_input(tmp_path, args, capsys):
    from data_loader.synthfaces.__main__ import main

    if args == "unwritable":
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        args = ["--out", str(blocker / "sub"), "--num", "2", "--size", "32"]
    else:
        args = ["--out", str(tmp_path / "o"), "--num", "2", "--size", "32"] + args
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], lines
    assert not (tmp_path / "o" / "CelebAMask-HQ-attribute-anno.txt").exists()


@pytest.mark.slow
def test_cli_bad_input_exits_2_without_a_traceback(tmp_path):
    """The same as a command: exit status 2, one line on stderr (the cases above run in-process)."""
    r = _cli("--out", str(tmp_path / "o"), "--num", "2", "--size", "abc")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_dataset():
    torch = pytest.importorskip("torch")
    from data_loader.synthfaces import SynthFacesDataset

    seen = []

    def tf(sample):
        seen.append(sample["index"])
        sample["flag"] = True
        return sample

    kw = dict(size=32, seed=SEED, num_train=5, num_val=3, num_test=2)
    tr = SynthFacesDataset(split="train", cache=True, transform=tf, **kw)
    va, te = SynthFacesDataset(split="val", **kw), SynthFacesDataset(split="test", **kw)
    assert (len(tr), len(va), len(te)) == (5, 3, 2)
    ids = [d[i]["index"] for d in (tr, va, te) for i in range(len(d))]
    assert sorted(ids) == list(range(10))
    s = va[1]
    assert set(s) == {"image", "mask", "attrs", "index", "name"}
    assert s["image"].dtype == torch.float32 and s["image"].shape == (3, 32, 32)
    assert s["image"].min() >= -1 and s["image"].max() <= 1
    assert s["mask"].shape == (1, 32, 32) and bool((s["mask"] == 1).all())
    assert s["name"] == str(s["index"]) and isinstance(s["index"], int)
    f = sample_factors(SEED, s["index"])
    expect = torch.from_numpy(render(f, 32)).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(s["image"], expect)
    assert s["attrs"].tolist() == attribute_vector(f).tolist()
    seen.clear()
    a = tr[2]
    assert a["flag"] and seen == [2]
    assert torch.equal(tr[2]["image"], a["image"])  # from the cache, identical
    with pytest.raises(IndexError):
        tr[5]
    with pytest.raises(ValueError):
        SynthFacesDataset(split="dev")


def test_export_refuses_a_non_empty_folder(tmp_path, capsys):
    """Hostile inputs (issue 15): the export never writes into a folder that holds files, unless
    told to (``--overwrite``)."""
    from data_loader.synthfaces.__main__ import main

    out = tmp_path / "ds"
    out.mkdir()
    (out / "train.txt").write_text("mine\n")
    assert main(["--out", str(out), "--num", "1", "--size", "32"]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "train.txt").read_text() == "mine\n"
    assert main(["--out", str(out), "--num", "1", "--size", "32", "--overwrite"]) == 0
    assert (out / "images/0.jpg").is_file()
