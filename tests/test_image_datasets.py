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

from data_loader.augment import side_swap_pairs, train_augment
from data_loader.image_datasets import (CelebAHQDataset, FFHQDataset, ImageFolderDataset, parse_image_size,
                                        split_file_names, split_list_path)
from data_loader.masks import random_irregular_mask
from conftest import REFERENCE
from data_loader.registry import DATASETS, build_dataset, parse_dataset_spec
from model.config import ConfigError
from utils.image_io import ImageError

REPO = Path(__file__).resolve().parents[1]
SPLITS = REFERENCE / "splits"


# ---------------------------------------------------------------------------------------------
# Masks

def test_mask_values_shape_and_determinism():
    a = random_irregular_mask(64, np.random.default_rng(7))
    b = random_irregular_mask(64, np.random.default_rng(7))
    c = random_irregular_mask(64, np.random.default_rng(8))
    assert a.shape == (64, 64) and a.dtype == np.float32
    assert set(np.unique(a).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.1
    # The generator advances: two consecutive draws differ.
    rng = np.random.default_rng(3)
    assert not np.array_equal(random_irregular_mask(32, rng), random_irregular_mask(32, rng))


def test_mask_hole_fraction_is_sensible():
    fractions = np.array([1 - random_irregular_mask(64, np.random.default_rng(i)).mean() for i in range(100)])
    assert fractions.min() > 0.01 and fractions.max() < 0.95
    assert 0.2 < fractions.mean() < 0.8
    # Strokes stay at least 1 px wide, so tiny masks still have holes.
    tiny = [random_irregular_mask(8, np.random.default_rng(i)) for i in range(20)]
    assert all(t.min() == 0 for t in tiny)
    assert np.mean([1 - t.mean() for t in tiny]) > np.mean(fractions)  # relatively thicker strokes


def test_mask_scales_with_size():
    """Same generator state, different size: the 64-px mask is the 256-px mask scaled down (stroke
    widths scale with size/256), far closer than the mask of another seed."""
    same, other = [], []
    for i in range(5):
        big = torch.from_numpy(random_irregular_mask(256, np.random.default_rng(i)))[None, None]
        down = (F.avg_pool2d(big, 4)[0, 0] > 0.5).float().numpy()
        same.append((down == random_irregular_mask(64, np.random.default_rng(i))).mean())
        other.append((down == random_irregular_mask(64, np.random.default_rng(100 + i))).mean())
    assert min(same) > 0.85
    assert max(other) < min(same) - 0.1


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


def test_augment_swap_pairs():
    s = _sample(attrs=[1, 0, 1, 0])
    flipped = train_augment(s, np.random.default_rng(0), flip_p=1.0, mask_p=0.0, swap_pairs=[(0, 1)])
    assert flipped["attrs"].tolist() == [0, 1, 1, 0]
    assert s["attrs"].tolist() == [1, 0, 1, 0]
    kept = train_augment(s, np.random.default_rng(0), flip_p=0.0, mask_p=0.0, swap_pairs=[(0, 1)])
    assert kept["attrs"].tolist() == [1, 0, 1, 0]
    no_pairs = train_augment(s, np.random.default_rng(0), flip_p=1.0, mask_p=0.0)
    assert no_pairs["attrs"].tolist() == [1, 0, 1, 0]
    assert side_swap_pairs(["Left_Eye_Closed", "Smiling", "Right_Eye_Closed", "Left_Only"]) == [(0, 2)]
    assert side_swap_pairs(["Smiling", "Male"]) == []


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


def test_official_celebahq_split_logic():
    d = SPLITS / "celebahq"
    train_ids, val_ids = _read(d / "train.txt"), _read(d / "val.txt")
    assert len(train_ids) == 27000 and len(val_ids) == 3000
    assert len(set(train_ids) & set(val_ids)) == 700
    official = split_file_names(d, "train", ".jpg", "official")
    assert official == [f"{i}.jpg" for i in train_ids]
    excluded = split_file_names(d, "train", ".jpg", "exclude")
    assert len(excluded) == 26300
    assert not {Path(n).stem for n in excluded} & set(val_ids)
    assert excluded == [f"{i}.jpg" for i in train_ids if i not in set(val_ids)]  # order kept
    assert split_list_path(d, "test") == d / "val.txt"
    assert split_file_names(d, "test") == [f"{i}.jpg" for i in val_ids]


def test_official_celebahq_dataset_without_images(tmp_path):
    d = SPLITS / "celebahq"
    first = split_file_names(d, "train")[0]
    _write(tmp_path / first)  # construction only checks the first image
    ds = CelebAHQDataset(d, tmp_path, [256, 256], split="train")
    assert len(ds) == 26300 and ds.names[0] == Path(first).stem
    official = CelebAHQDataset(d, tmp_path, 256, split="train", train_overlap="official",
                               num_samples=-1)
    assert len(official) == 27000
    assert len(set(official.names) & set(_read(d / "val.txt"))) == 700
    assert ds[0]["image"].shape == (3, 256, 256)
    with pytest.raises(ImageError, match=f"{ds.names[1]}.jpg"):
        ds[1]


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
    for p in sorted((REPO / "configs").glob("*.json")):
        block = json.loads(p.read_text()).get("data_set")
        if block is not None:
            assert parse_dataset_spec(block)[0] in DATASETS, p.name


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
