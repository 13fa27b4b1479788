"""Hole masks, training augmentation, real-image datasets (CelebA-HQ / FFHQ / folders) and the
dataset registry."""
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from data_loader.augment import side_mirror_pairs, train_augment
from data_loader.image_datasets import (CelebAHQDataset, FFHQDataset, ImageFolderDataset, parse_image_size,
                                        split_file_names, split_list_path)
from data_loader.masks import random_irregular_mask
from data_loader.registry import DATASETS, build_dataset, parse_dataset_spec
from model.config import ConfigError
from tests.helpers import REFERENCE, ROOT as REPO
from utils.image_io import ImageError

SPLITS = REFERENCE / "splits"


# ---------------------------------------------------------------------------------------------
# Masks

def test_mask_values_shape_and_determinism():
    a = random_irregular_mask(256, np.random.default_rng(7))
    b = random_irregular_mask(256, np.random.default_rng(7))
    c = random_irregular_mask(256, np.random.default_rng(8))
    assert a.shape == (256, 256) and a.dtype == np.float32
    assert set(np.unique(a).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.1
    # The generator advances: two consecutive draws differ.
    rng = np.random.default_rng(3)
    assert not np.array_equal(random_irregular_mask(64, rng), random_irregular_mask(64, rng))


class _PyRandom:
    """numpy-Generator-like adapter over Python's ``random`` (``integers`` has an exclusive end)."""

    def __init__(self, seed):
        import random
        self.r = random.Random(seed)

    def integers(self, a, b):
        return self.r.randint(a, b - 1)

    def random(self):
        return self.r.random()


def _official_strokes(size, width, seed):
    """Section 6 of the reference README, written out with Python's random and OpenCV."""
    import random

    import cv2
    r = random.Random(seed)
    img = np.zeros((size, size, 1), np.uint8)
    for _ in range(r.randint(32, 64)):
        m = r.random()
        if m < 0.6:
            x1, x2, y1, y2 = r.randint(1, size), r.randint(1, size), r.randint(1, size), r.randint(1, size)
            cv2.line(img, (x1, y1), (x2, y2), (1, 1, 1), r.randint(4, width))
        elif 0.6 < m < 0.8:
            x1, y1 = r.randint(1, size), r.randint(1, size)
            cv2.circle(img, (x1, y1), r.randint(4, width), (1, 1, 1), -1)
        elif m > 0.8:
            x1, y1 = r.randint(1, size), r.randint(1, size)
            s1, s2 = r.randint(1, size), r.randint(1, size)
            a1, a2, a3 = r.randint(3, 180), r.randint(3, 180), r.randint(3, 180)
            cv2.ellipse(img, (x1, y1), (s1, s2), a1, a2, a3, (1, 1, 1), r.randint(4, width))
    return img[..., 0]


def test_mask_strokes_are_the_official_recipe():
    """Same random draws -> the same pixels as the recipe written out with Python's random + OpenCV
    (32..64 strokes; lines, filled circles and arcs of at most 177 degrees, 4..width px)."""
    from data_loader.masks import draw_strokes

    for size, width, seed in ((256, 16, 0), (256, 16, 1), (1024, 70, 2), (64, 16, 3)):
        np.testing.assert_array_equal(draw_strokes(size, _PyRandom(seed), width),
                                      _official_strokes(size, width, seed))
    # An arc from 10 to 170 degrees (160 degrees) of a circle: the upper half of its ring is never drawn.
    import cv2
    ring = np.zeros((256, 256), np.uint8)
    cv2.ellipse(ring, (128, 128), (100, 100), 0, 10, 170, 1, 4)
    assert ring[:120].sum() == 0 and ring[140:].sum() > 0


def test_mask_hole_fraction_and_dataset_settings():
    from data_loader.masks import mask_settings

    # Mean hole fraction at 256 px, CelebA-HQ width 16, p = 1: the same as the written-out recipe
    # (the project's earlier masks, full-turn arcs with 5-50 % half-axes: 0.576).
    ours = np.mean([1 - random_irregular_mask(256, np.random.default_rng(i)).mean() for i in range(300)])
    ref = np.mean([_official_strokes(256, 16, 1000 + i).mean() for i in range(300)])
    assert abs(ours - ref) < 0.02 and 0.46 < ours < 0.56
    ff = mask_settings("FFHQDataset", 1024)
    assert (ff.p, ff.width, ff.canvas_for(1024)) == (0.7, 70, 1024)
    cel = mask_settings("CelebAHQDataset", 256)
    assert (cel.p, cel.width, cel.canvas_for(256)) == (0.5, 16, 256)
    # SynthFaces (any size) and sizes below 64 px: a 256-px canvas reduced to the model size.
    for kind, size in (("SynthFaces", 64), ("SynthFaces", 32), ("ImageFolderDataset", 32)):
        st = mask_settings(kind, size)
        assert (st.p, st.width, st.canvas_for(size)) == (0.5, 16, 256)
    assert mask_settings("FFHQDataset", 256, p=0.2, width=30, canvas=128).canvas_for(256) == 128
    with pytest.raises(ValueError):
        mask_settings("CelebAHQDataset", 256, width=3)
    with pytest.raises(ValueError):
        mask_settings("CelebAHQDataset", 256, canvas=32)
    # Small sizes keep CelebA-HQ's share of holes.
    small = np.mean([1 - random_irregular_mask(32, np.random.default_rng(i)).mean() for i in range(100)])
    assert abs(small - ours) < 0.06


def test_small_masks_are_the_256_canvas_reduced():
    import cv2
    for i in range(3):
        big = 1 - random_irregular_mask(256, np.random.default_rng(i))
        small = 1 - random_irregular_mask(32, np.random.default_rng(i))
        expect = cv2.resize(big, (32, 32), interpolation=cv2.INTER_AREA) >= 0.5
        np.testing.assert_array_equal(small.astype(bool), expect)


def test_mask_rejects_bad_arguments():
    with pytest.raises(ValueError):
        random_irregular_mask(0, np.random.default_rng(0))
    with pytest.raises(TypeError):
        random_irregular_mask(16, np.random.RandomState(0))


# ---------------------------------------------------------------------------------------------
# Augmentation

def _sample(size=16, attrs=None):
    image = torch.linspace(-1, 1, 3 * size * size).reshape(3, size, size)
    s = {"image": image, "mask": torch.ones(1, size, size), "index": 5, "name": "x"}
    if attrs is not None:
        s["attrs"] = torch.tensor(attrs, dtype=torch.float32)
    return s


def test_flip_mirrors_and_does_not_modify_input():
    s = _sample()
    orig = s["image"].clone()
    out = train_augment(s, np.random.default_rng(0), flip_p=1.0, mask_p=0.0)
    assert out["flipped"] is True
    assert torch.equal(out["image"][:, :, 0], orig[:, :, -1])
    assert torch.equal(out["image"], orig.flip(-1))
    assert torch.equal(out["mask"], torch.ones(1, 16, 16))
    assert torch.equal(s["image"], orig)  # input untouched (cached samples stay valid)
    assert out["index"] == 5 and out["name"] == "x"
    same = train_augment(s, np.random.default_rng(0), flip_p=0.0, mask_p=0.0)
    assert same["flipped"] is False and torch.equal(same["image"], orig)


def test_mask_applied_with_mask_p_one():
    out = train_augment(_sample(32), np.random.default_rng(1), flip_p=0.0, mask_p=1.0)
    assert out["mask"].shape == (1, 32, 32) and out["mask"].dtype == torch.float32
    wide = train_augment(_sample(64), np.random.default_rng(1), flip_p=0.0, mask_p=1.0, mask_width=70,
                         mask_canvas=256)
    assert 1 - wide["mask"].mean() > 1 - out["mask"].mean()
    assert 0 < out["mask"].mean() < 1
    assert set(out["mask"].unique().tolist()) == {0.0, 1.0}


def test_augment_probabilities_and_determinism():
    s = _sample()
    rng = np.random.default_rng(123)
    n = 600
    flips = masks = 0
    for _ in range(n):
        out = train_augment(s, rng)
        flips += out["flipped"]
        masks += bool(out["mask"].min() < 1)
    assert 0.42 * n < flips < 0.58 * n
    assert 0.42 * n < masks < 0.58 * n
    rare = sum(train_augment(s, rng, flip_p=0.2, mask_p=0.0)["flipped"] for _ in range(n))
    assert 0.13 * n < rare < 0.27 * n
    a = train_augment(s, np.random.default_rng([1, 2, 3]))
    b = train_augment(s, np.random.default_rng([1, 2, 3]))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])


def test_augment_mirror_pairs():
    s = _sample(attrs=[1, 0, 1, 0])
    flipped = train_augment(s, np.random.default_rng(0), flip_p=1.0, mask_p=0.0, mirror_pairs=[(0, 1)])
    assert flipped["attrs"].tolist() == [0, 1, 1, 0]
    assert s["attrs"].tolist() == [1, 0, 1, 0]
    kept = train_augment(s, np.random.default_rng(0), flip_p=0.0, mask_p=0.0, mirror_pairs=[(0, 1)])
    assert kept["attrs"].tolist() == [1, 0, 1, 0]
    no_pairs = train_augment(s, np.random.default_rng(0), flip_p=1.0, mask_p=0.0)
    assert no_pairs["attrs"].tolist() == [1, 0, 1, 0]
    assert side_mirror_pairs(["Left_Eye_Closed", "Smiling", "Right_Eye_Closed", "Left_Only"]) == [(0, 2)]
    assert side_mirror_pairs(["Smiling", "Male"]) == []


def test_augment_rejects_bad_input():
    with pytest.raises(ValueError):
        train_augment(_sample(), np.random.default_rng(0), flip_p=1.5)
    with pytest.raises(ValueError):
        train_augment({"image": torch.zeros(3, 8, 9), "mask": torch.ones(1, 8, 9)}, np.random.default_rng(0))


# ---------------------------------------------------------------------------------------------
# Datasets on a temporary folder

def _write(path: Path, mode="RGB", size=(40, 30), color=(200, 30, 60)):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        im = Image.new("L", size, 90)
    elif mode == "RGBA":
        im = Image.new("RGBA", size, (10, 20, 30, 0))  # fully transparent -> white
    else:
        im = Image.new("RGB", size, color)
    im.save(path)


@pytest.fixture()
def celeba(tmp_path):
    img, lists = tmp_path / "img", tmp_path / "lists"
    _write(img / "1.jpg")
    _write(img / "2.jpg", "L")
    _write(img / "3.png", "RGBA")
    _write(img / "4.jpg", color=(0, 0, 255))
    (img / "8.jpg").write_bytes(b"this is not a jpeg")
    lists.mkdir()
    (lists / "train.txt").write_text("1\n2\n\n3.png\n4\n7\n8\n")  # 7: missing, 8: corrupt
    (lists / "val.txt").write_text("4\n1\n")
    return lists, img


def test_celebahq_samples(celeba):
    lists, img = celeba
    ds = CelebAHQDataset(lists, img, [16, 16], split="train", train_overlap="official")
    assert len(ds) == 6 and ds.names == ["1", "2", "3", "4", "7", "8"]
    s = ds[0]
    assert set(s) == {"image", "mask", "index", "name"}
    assert s["image"].shape == (3, 16, 16) and s["image"].dtype == torch.float32
    assert s["image"].min() >= -1 and s["image"].max() <= 1
    assert abs(s["image"][0].mean() - (200 / 127.5 - 1)) < 0.05  # red channel of (200, 30, 60)
    assert torch.equal(s["mask"], torch.ones(1, 16, 16)) and s["index"] == 0 and s["name"] == "1"
    gray = ds[1]["image"]
    assert gray.shape == (3, 16, 16) and torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])
    rgba = ds[2]["image"]
    assert rgba.shape == (3, 16, 16) and rgba.min() > 0.9  # transparent over white
    assert ds[-3]["name"] == "4"
    with pytest.raises(IndexError):
        ds[6]


def test_celebahq_overlap_and_test_fallback(celeba):
    lists, img = celeba
    excl = CelebAHQDataset(lists, img, 16, split="train")  # default: exclude
    assert excl.names == ["2", "3", "7", "8"]
    val = CelebAHQDataset(lists, img, 16, split="val")
    assert val.names == ["4", "1"]
    test = CelebAHQDataset(lists, img, 16, split="test")  # no test.txt -> val.txt
    assert test.names == ["4", "1"]
    (lists / "test.txt").write_text("2\n")
    assert CelebAHQDataset(lists, img, 16, split="test").names == ["2"]
    assert CelebAHQDataset(lists, img, 16, split="train").names == ["3", "7", "8"]  # test ids excluded too
    assert CelebAHQDataset(lists, img, 16, split="train", train_overlap="official", num_samples=2).names == ["1", "2"]
    with pytest.raises(ConfigError, match="train_overlap"):
        CelebAHQDataset(lists, img, 16, train_overlap="keep")
    with pytest.raises(ConfigError, match="split"):
        CelebAHQDataset(lists, img, 16, split="training")


def test_image_size_must_be_square():
    assert parse_image_size(64) == 64 and parse_image_size([32, 32]) == 32
    for bad in ([32, 64], [32], 0, "64", True):
        with pytest.raises(ConfigError):
            parse_image_size(bad)


def test_missing_and_corrupt_files_are_named(celeba, tmp_path):
    lists, img = celeba
    ds = CelebAHQDataset(lists, img, 16, split="train", train_overlap="official")
    with pytest.raises(ImageError, match="7.jpg"):
        ds[4]
    with pytest.raises(ImageError, match="8.jpg"):
        ds[5]
    with pytest.raises(ImageError, match=r"image_dir.*nowhere|nowhere.*image_dir"):
        CelebAHQDataset(lists, tmp_path / "nowhere", 16)
    with pytest.raises(ImageError, match="train.txt"):
        CelebAHQDataset(tmp_path / "img", img, 16)  # a folder without split lists
    with pytest.raises(ImageError, match="no_lists"):
        CelebAHQDataset(tmp_path / "no_lists", img, 16)
    (lists / "val.txt").write_text("9\n")
    with pytest.raises(ImageError, match="9.jpg"):  # first entry missing: caught at construction
        CelebAHQDataset(lists, img, 16, split="val")


def test_ffhq_resolves_png(tmp_path):
    img, lists = tmp_path / "ffhq", tmp_path / "lists"
    for n in ("00001", "00002", "00003"):
        _write(img / f"{n}.png")
    lists.mkdir()
    (lists / "train.txt").write_text("00001.png\n00002\n")  # file names or bare ids
    (lists / "val.txt").write_text("00003.png\n")
    (lists / "test.txt").write_text("00002.png\n")
    ds = FFHQDataset(lists, img, 8, split="train", train_overlap="official")
    assert [p.name for p in ds.paths] == ["00001.png", "00002.png"] and ds[1]["name"] == "00002"
    assert FFHQDataset(lists, img, 8, split="train").names == ["00001"]
    assert FFHQDataset(lists, img, 8, split="test").names == ["00002"]


def test_image_folder_split(tmp_path):
    for i in range(10):
        _write(tmp_path / f"im{i:02d}.png", size=(12, 12))
    (tmp_path / "notes.txt").write_text("ignored")
    train = ImageFolderDataset(tmp_path, 8, split="train", val_fraction=0.2)
    val = ImageFolderDataset(tmp_path, 8, split="val", val_fraction=0.2)
    test = ImageFolderDataset(tmp_path, [8, 8], split="test", val_fraction=0.2)
    assert train.names == [f"im{i:02d}" for i in range(8)]
    assert val.names == ["im08", "im09"] and test.names == val.names
    assert ImageFolderDataset(tmp_path, 8, num_samples=3).names == ["im00", "im01", "im02"]
    assert len(ImageFolderDataset(tmp_path, 8, val_fraction=0.0)) == 10
    with pytest.raises(ImageError):
        ImageFolderDataset(tmp_path, 8, split="val", val_fraction=0.0)  # empty split
    assert val[1]["image"].shape == (3, 8, 8) and val[1]["index"] == 1
    with pytest.raises(ImageError, match="no images"):
        (tmp_path / "empty").mkdir()
        ImageFolderDataset(tmp_path / "empty", 8)


def _stub_attributes(monkeypatch, names, table):
    mod = types.ModuleType("data_loader.attributes")
    mod.read_attribute_file = lambda path: (names, table)
    monkeypatch.setitem(sys.modules, "data_loader.attributes", mod)


def test_attributes_attached(celeba, monkeypatch):
    lists, img = celeba
    attr = lists / "anno.txt"
    attr.write_text("stub")
    names = ["Smiling", "Male"]
    table = {f"{i}.jpg": np.array([1, -1]) if i % 2 else np.array([-1, 1]) for i in range(1, 9)}
    _stub_attributes(monkeypatch, names, table)
    ds = CelebAHQDataset(lists, img, 16, split="val", attr_file=attr)
    assert ds.attr_names == names
    s = ds[0]  # id 4
    assert s["attrs"].dtype == torch.float32 and s["attrs"].tolist() == [0.0, 1.0]
    assert ds[1]["attrs"].tolist() == [1.0, 0.0]
    del table["4.jpg"]
    with pytest.raises(ImageError, match="4.jpg"):
        CelebAHQDataset(lists, img, 16, split="val", attr_file=attr)
    with pytest.raises(ImageError, match="missing_anno"):
        CelebAHQDataset(lists, img, 16, split="val", attr_file=lists / "missing_anno.txt")


def test_attributes_real_reader(celeba):
    pytest.importorskip("data_loader.attributes")
    lists, img = celeba
    attr = lists / "CelebAMask-HQ-attribute-anno.txt"
    attr.write_text("3\nSmiling Male\n1.jpg 1 -1\n4.jpg -1 1\n2.jpg 1 1\n")
    ds = CelebAHQDataset(lists, img, 16, split="val", attr_file=attr)
    assert ds.attr_names == ["Smiling", "Male"]
    assert ds[0]["attrs"].tolist() == [0.0, 1.0] and ds[1]["attrs"].tolist() == [1.0, 0.0]


# ---------------------------------------------------------------------------------------------
# Official split lists (reference data, read in place)

def _read(path):
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_official_celebahq_split_logic():
    d = SPLITS / "celebahq"
    train_ids, val_ids = _read(d / "train.txt"), _read(d / "val.txt")
    assert len(train_ids) == 27000 and len(val_ids) == 3000
    assert len(set(train_ids) & set(val_ids)) == 700
    official = split_file_names(d, "train", ".jpg", "official")
    # The release opens str(int(id)) + ".jpg": 07070 -> 7070.jpg.
    assert official == [f"{int(i)}.jpg" for i in train_ids]
    assert sum(i.startswith("0") for i in train_ids) == 9092 and sum(i.startswith("0") for i in val_ids) == 996
    assert "07070" in train_ids and "7070.jpg" in official and "07070.jpg" not in official
    excluded = split_file_names(d, "train", ".jpg", "exclude")
    assert len(excluded) == 26300
    assert not {Path(n).stem for n in excluded} & {str(int(i)) for i in val_ids}
    assert excluded == [f"{int(i)}.jpg" for i in train_ids if i not in set(val_ids)]  # order kept
    assert split_list_path(d, "test") == d / "val.txt"
    assert split_file_names(d, "test") == [f"{int(i)}.jpg" for i in val_ids]


def test_official_celebahq_dataset_without_images(tmp_path):
    d = SPLITS / "celebahq"
    first = split_file_names(d, "train")[0]
    _write(tmp_path / first)  # construction only checks the first image
    ds = CelebAHQDataset(d, tmp_path, [256, 256], split="train")
    assert len(ds) == 26300 and ds.names[0] == Path(first).stem
    official = CelebAHQDataset(d, tmp_path, 256, split="train", train_overlap="official",
                               num_samples=-1)
    assert len(official) == 27000
    assert len(set(official.names) & {str(int(i)) for i in _read(d / "val.txt")}) == 700
    assert ds[0]["image"].shape == (3, 256, 256)
    with pytest.raises(ImageError, match=f"{ds.names[1]}.jpg"):
        ds[1]


def test_celebahq_zero_padded_ids_open_release_names(tmp_path):
    """Official CelebA-HQ lists hold zero-padded ids; images are named str(int(id)).jpg (CelebAMask-HQ's
    CelebA-HQ-img). A zero-padded file is accepted when only it exists; attributes follow the same rule."""
    d = SPLITS / "celebahq"
    val_ids = _read(d / "val.txt")
    padded = [i for i in val_ids if i.startswith("0")][:3]  # e.g. 08712, 01996, 05461
    plain = [i for i in val_ids if not i.startswith("0")][:2]
    lists, img = tmp_path / "lists", tmp_path / "img"
    lists.mkdir()
    (lists / "train.txt").write_text("\n".join(padded[:1] + plain[:1]) + "\n")
    (lists / "val.txt").write_text("\n".join(padded + plain) + "\n")
    for i in padded[:2] + plain:
        _write(img / f"{int(i)}.jpg", color=(int(i) % 256, 0, 0))  # the release's names
    _write(img / f"{padded[2]}.jpg", color=(7, 0, 0))  # only a zero-padded file for the third id
    ds = CelebAHQDataset(lists, img, 8, split="val", train_overlap="official")
    assert [p.name for p in ds.paths] == [f"{int(i)}.jpg" for i in padded[:2]] + [f"{padded[2]}.jpg"] + \
        [f"{int(i)}.jpg" for i in plain]
    for k in range(len(ds)):  # every image opens (the project used to open 08712.jpg and stop)
        assert ds[k]["image"].shape == (3, 8, 8)
    assert ds.names[0] == str(int(padded[0]))
    # Attribute lookup: the CelebAMask-HQ file names images <int id>.jpg.
    attr = lists / "anno.txt"
    rows = "\n".join(f"{int(i)}.jpg {1 if k % 2 else -1}" for k, i in enumerate(padded + plain))
    attr.write_text(f"{len(padded + plain)}\nSmiling\n{rows}\n")
    ds = CelebAHQDataset(lists, img, 8, split="val", attr_file=attr)
    assert [a[0] for a in ds._attrs.tolist()] == [k % 2 for k in range(5)]
    # Training with "exclude" drops ids of the val list whatever their spelling.
    (lists / "train.txt").write_text(f"{int(padded[0])}\n{plain[0]}\n{padded[1]}\n")
    (lists / "val.txt").write_text(f"{padded[0]}\n")
    tr = CelebAHQDataset(lists, img, 8, split="train")
    assert tr.names == [plain[0], str(int(padded[1]))]


def test_list_files_resolve_release_names(tmp_path):
    from utils.image_io import read_list_file, resolve_inputs

    img = tmp_path / "img"
    for n in ("7070.jpg", "29960.jpg", "00001.png", "05461.jpg"):
        _write(img / n)
    lst = tmp_path / "faces.txt"
    lst.write_text("07070\n29960.jpg\n00001.png\n05461\n123\n")
    got = [p.name for p in read_list_file(lst, img)]
    # 05461: only the zero-padded file exists; 123: missing, named as the release would open it.
    assert got == ["7070.jpg", "29960.jpg", "00001.png", "05461.jpg", "123.jpg"]
    assert [p.name for p in resolve_inputs([lst], img)] == got
    # The official evaluation lists resolve the same way (test.txt holds 29960.jpg, ...).
    test_list = REFERENCE / "official_eval_lists" / "celebahq-lists" / "test.txt"
    names = [p.name for p in read_list_file(test_list, img)]
    assert len(names) == 3000 and names[0] == "29960.jpg"


def test_official_ffhq_split_logic():
    d = SPLITS / "ffhq"
    counts = {s: len(split_file_names(d, s, ".png", "official")) for s in ("train", "val", "test")}
    assert counts == {"train": 65000, "val": 3000, "test": 2000}
    assert len(split_file_names(d, "train", ".png", "exclude")) == 65000  # FFHQ lists are disjoint
    assert all(n.endswith(".png") for n in split_file_names(d, "test", ".png"))


# ---------------------------------------------------------------------------------------------
# Registry

def test_registry_errors_list_valid_keys():
    assert set(DATASETS) == {"CelebAHQDataset", "FFHQDataset", "ImageFolderDataset", "SynthFaces"}
    with pytest.raises(ConfigError) as e:
        build_dataset({"type": "CelebA", "args": {}}, "train")
    for name in DATASETS:
        assert name in str(e.value)
    args = {"data_dir": "x", "image_dir": "y", "image_size": 64}
    with pytest.raises(ConfigError) as e:
        parse_dataset_spec({"type": "CelebAHQDataset", "args": {**args, "imgsize": 3}})
    for name in ("imgsize", "data_dir", "image_dir", "image_size", "train_overlap", "num_samples", "attr_file"):
        assert name in str(e.value)
    with pytest.raises(ConfigError, match="image_dir"):
        parse_dataset_spec({"type": "CelebAHQDataset", "args": {"data_dir": "x", "image_size": 64}})
    with pytest.raises(ConfigError, match="valid keys"):
        parse_dataset_spec({"type": "SynthFaces", "arguments": {}})
    with pytest.raises(ConfigError, match="split"):
        build_dataset({"type": "SynthFaces", "args": {}}, "training")


@pytest.mark.parametrize("kind,args", [
    ("CelebAHQDataset", {"data_dir": 1, "image_dir": "y", "image_size": 64}),
    ("CelebAHQDataset", {"data_dir": "x", "image_dir": "y", "image_size": "64"}),
    ("CelebAHQDataset", {"data_dir": "x", "image_dir": "y", "image_size": [64, 32]}),
    ("CelebAHQDataset", {"data_dir": "x", "image_dir": "y", "image_size": 64, "num_samples": 1.5}),
    ("CelebAHQDataset", {"data_dir": "x", "image_dir": "y", "image_size": 64, "train_overlap": "all"}),
    ("FFHQDataset", {"data_dir": "x", "image_dir": "y", "image_size": 64, "attr_file": 3}),
    ("ImageFolderDataset", {"image_dir": "y", "image_size": 64, "val_fraction": 1.0}),
    ("SynthFaces", {"size": "64"}),
    ("SynthFaces", {"cache": "yes"}),
    ("SynthFaces", {"num_train": True}),
])
def test_registry_type_errors(kind, args):
    with pytest.raises(ConfigError):
        parse_dataset_spec({"type": kind, "args": args})


def test_registry_parses_official_and_project_configs(reference_dir):
    blocks = [json.loads(p.read_text())["data_set"] for p in sorted((reference_dir / "official_configs").glob("*.json"))]
    assert len(blocks) == 4
    for block in blocks:
        kind, args = parse_dataset_spec(block)
        assert kind == "CelebAHQDataset" and args.train_overlap == "exclude"
        assert args.image_size in ([256, 256], [1024, 1024])
    from trainer.config import read_config_data

    for p in sorted((REPO / "configs").rglob("*.json")):  # "base" chains resolved: every config has its data set
        assert parse_dataset_spec(read_config_data(p)["data_set"])[0] in DATASETS, p.name


def test_registry_builds(celeba, tmp_path, monkeypatch):
    lists, img = celeba
    spec = {"type": "CelebAHQDataset",
            "args": {"data_dir": str(lists), "image_dir": str(img), "image_size": [16, 16]}}
    train, val = build_dataset(spec, "train"), build_dataset(spec, "val")
    assert isinstance(train, CelebAHQDataset) and train.names == ["2", "3", "7", "8"]
    assert val.split == "val" and val.names == ["4", "1"] and val.image_size == 16
    folder = build_dataset({"type": "ImageFolderDataset", "args": {"image_dir": str(img), "image_size": 8,
                                                                   "val_fraction": 0.25}}, "val")
    assert isinstance(folder, ImageFolderDataset) and folder.names == ["8"]

    calls = []

    class Stub:
        def __init__(self, **kwargs):
            calls.append(kwargs)

    mod = types.ModuleType("data_loader.synthfaces")
    mod.SynthFacesDataset = Stub
    monkeypatch.setitem(sys.modules, "data_loader.synthfaces", mod)
    build_dataset({"type": "SynthFaces", "args": {"size": 32, "num_train": 4, "cache": True}}, "val")
    assert calls == [{"split": "val", "size": 32, "num_train": 4, "cache": True}]


def test_registry_builds_real_synthfaces():
    pytest.importorskip("data_loader.synthfaces")
    spec = {"type": "SynthFaces", "args": {"size": 32, "seed": 1, "num_train": 4, "num_val": 2, "num_test": 3,
                                           "cache": False}}
    assert [len(build_dataset(spec, s)) for s in ("train", "val", "test")] == [4, 2, 3]


# ---------------------------------------------------------------------------------------------
# The release's image pipeline: OpenCV INTER_LINEAR resize (no antialiasing), flip before resize

def _photo(path: Path, size=96, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    a = np.stack([(xx * 255 // size), (yy * 255 // size), ((xx + yy) * 127 // size)], -1)
    a = np.clip(a + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)  # high frequencies
    Image.fromarray(a).save(path)
    return a


def _cv2_load(path, size, flip=False):
    """The official loader: cv2.imread (BGR -> RGB), flip, cv2.resize INTER_LINEAR, x / 127.5 - 1."""
    import cv2
    a = cv2.imread(str(path))[:, :, ::-1]
    if flip:
        a = cv2.flip(a, 1)
    a = cv2.resize(np.ascontiguousarray(a), (size, size), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1) / 127.5 - 1


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_load_image_is_opencv_inter_linear(tmp_path, ext):
    from utils.image_io import load_image

    path = tmp_path / f"face{ext}"
    _photo(path, 100)
    for size in (25, 64, 37, 160):
        assert torch.equal(load_image(path, size), _cv2_load(path, size)), size
        assert torch.equal(load_image(path, size, flip=True), _cv2_load(path, size, flip=True)), size
    # The antialiased resize stays available (new work) and differs.
    aa = load_image(path, 25, resize="antialias")
    assert aa.shape == (3, 25, 25) and (aa - load_image(path, 25)).abs().max() > 0.05
    with pytest.raises(ValueError, match="resize"):
        load_image(path, 25, resize="bicubic")


def test_inter_linear_downscale_by_four_samples_two_by_two(tmp_path):
    """A 4x downscale without antialiasing: output (i, j) is the mean of source pixels
    (4i+1..4i+2, 4j+1..4j+2), the 2x2 block at the half-pixel centre, rounded."""
    from utils.image_io import resize_uint8

    a = np.random.default_rng(1).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    out = resize_uint8(a, 16, "opencv").astype(np.float64)
    block = a.astype(np.float64).reshape(16, 4, 16, 4, 3)[:, 1:3, :, 1:3].mean(axis=(1, 3))
    assert np.abs(out - block).max() <= 0.5 + 1e-9
    assert np.abs(out - np.floor(block + 0.5)).max() <= 1


def test_datasets_flip_before_resize(tmp_path):
    from trainer.data import AugmentedDataset, PlainDataset

    img, lists = tmp_path / "img", tmp_path / "lists"
    img.mkdir()
    lists.mkdir()
    _photo(img / "7070.jpg", 90, 1)
    _photo(img / "12.jpg", 90, 2)
    (lists / "train.txt").write_text("07070\n00012\n")
    (lists / "val.txt").write_text("00012\n")
    ds = CelebAHQDataset(lists, img, 32, split="train", train_overlap="official")
    assert ds.resize == "opencv"
    assert torch.equal(ds[0]["image"], _cv2_load(img / "7070.jpg", 32))
    flipped = ds.load(0, flip=True)["image"]
    assert torch.equal(flipped, _cv2_load(img / "7070.jpg", 32, flip=True))
    aug = AugmentedDataset(ds, seed=0, flip_p=1.0, mask_p=0.0)
    assert torch.equal(aug[(0, 0)]["image"], flipped)
    aug_sub = AugmentedDataset(torch.utils.data.Subset(ds, [1]), seed=0, flip_p=1.0, mask_p=0.0)
    assert torch.equal(aug_sub[(0, 0)]["image"], _cv2_load(img / "12.jpg", 32, flip=True))
    assert torch.equal(PlainDataset(ds)[1]["image"], _cv2_load(img / "12.jpg", 32))
    old = CelebAHQDataset(lists, img, 32, split="train", train_overlap="official", resize="antialias")
    assert (old[0]["image"] - ds[0]["image"]).abs().max() > 0.02
    with pytest.raises(ConfigError, match="resize"):
        parse_dataset_spec({"type": "CelebAHQDataset", "args": {"data_dir": "x", "image_dir": "y",
                                                                 "image_size": 64, "resize": "cubic"}})
