"""Datasets of real face images: CelebA-HQ and FFHQ (official split lists) and plain folders.

Every dataset returns ``{"image": float32 [3, S, S] in [-1, 1], "mask": ones [1, S, S],
"index": int, "name": file stem}`` plus ``"attrs"`` (float 0/1 [num_attrs]) when an attribute
file is given. Images are read lazily, converted to RGB and resized to S with ``resize``:
``"opencv"`` (default; OpenCV INTER_LINEAR without antialiasing, as the official loaders) or
``"antialias"`` (PIL bicubic with antialiasing, an option for new work). ``load(index, flip=True)``
mirrors the image *before* resizing, the official training order; training augmentation (flip
decision, hole masks) lives in :mod:`data_loader.augment`.

Split lists (``<data_dir>/{train,val,test}.txt``) hold one entry per line, an id (``17420``) or a
file name (``30047.png``). CelebA-HQ lists hold zero-padded ids (``07070``) while the images are
named ``7070.jpg``: as the release, an id opens ``str(int(id)) + ext``; a zero-padded file is
used instead when only it exists (``utils.image_io.resolve_entry``). The official CelebA-HQ release has no
``test.txt``: its evaluation uses ``val.txt``, and so does ``split="test"`` here whenever
``test.txt`` is absent. 700 of the official CelebA-HQ validation ids also occur in its training
list; ``train_overlap="official"`` keeps them (reproduces the release), ``"exclude"`` (default)
drops from the training split every id listed in ``val.txt`` or ``test.txt``.

Output names (``OUTPUT_NAMES``, used by the editing scripts): the release's reconstruction and
attribute scripts name an output after the image's id as a number, ``str(int(id)) + ".png"``, for
CelebA-HQ and FFHQ alike (FFHQ's ``00123.png`` -> ``123.png``); :func:`output_stem` gives that
spelling (``release``) or the input's stem unchanged (``stem``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch.utils.data import Dataset

from utils.errors import ConfigError
from utils.image_io import (IMAGE_EXTENSIONS, RESIZE_METHODS, ImageError, PathLike, canonical_id, entry_candidates,
                            list_images, load_image, read_list_entries, resolve_entry)

SPLITS = ("train", "val", "test")
OVERLAP_MODES = ("official", "exclude")
OUTPUT_NAMES = ("stem", "release")


def output_stem(stem: str, names: str = "stem") -> str:
    """The name (without ``.png``) of the output for an input file stem: ``release`` writes an
    all-digit stem as the number, without leading zeros (``00123`` -> ``123``, ``0000`` -> ``0``),
    other stems unchanged; ``stem`` keeps every stem as it is."""
    if names not in OUTPUT_NAMES:
        raise ValueError(f"output names must be one of {', '.join(OUTPUT_NAMES)}, got {names!r}")
    return canonical_id(stem) if names == "release" and stem.isascii() else stem


def parse_image_size(image_size) -> int:
    """``256`` or ``[256, 256]`` -> 256; non-square or non-positive sizes are errors."""
    if isinstance(image_size, (list, tuple)):
        if len(image_size) != 2:
            raise ConfigError(f"image_size must be an int or [S, S], got {list(image_size)!r}")
        h, w = image_size
        if h != w:
            raise ConfigError(f"image_size must be square, got {list(image_size)!r}")
        image_size = h
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be a positive int or [S, S], got {image_size!r}")
    return image_size


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return split


def split_list_path(data_dir: PathLike, split: str) -> Path:
    """The list file of ``split``: ``<data_dir>/<split>.txt``; ``test`` falls back to ``val.txt``
    when ``test.txt`` is absent (official evaluation). Raises ImageError when missing."""
    _check_split(split)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ImageError(f"split list folder (data_dir) not found: {data_dir}; put the official split "
                         f"lists train.txt and val.txt (one image id or file name per line) there")
    path = data_dir / f"{split}.txt"
    if split == "test" and not path.is_file():
        path = data_dir / "val.txt"
    if not path.is_file():
        raise ImageError(f"split list not found: {path}; put the {split} list of the official release "
                         f"there (one image id or file name per line)")
    return path


def split_file_names(data_dir: PathLike, split: str, default_ext: str = ".jpg",
                     train_overlap: str = "exclude") -> list[str]:
    """The release's image file names of a split, in list order, without touching any image (pure
    split logic): a bare id ``07070`` -> ``7070.jpg`` (``str(int(id)) + default_ext``), a file name
    (FFHQ's ``00001.png``) as written. A dataset falls back to the other spelling when only that
    file exists (``utils.image_io.resolve_entry``).

    For ``split="train"`` with ``train_overlap="exclude"``, entries whose id occurs in ``val.txt``
    or ``test.txt`` of ``data_dir`` are dropped (ids compared as the release's names)."""
    return [entry_candidates(e, default_ext)[0] for e in split_entries(data_dir, split, train_overlap)]


def split_entries(data_dir: PathLike, split: str, train_overlap: str = "exclude") -> list[str]:
    """The entries of a split list as written (ids or file names), in list order, with the
    training entries that also occur in ``val.txt``/``test.txt`` dropped under
    ``train_overlap="exclude"``."""
    if train_overlap not in OVERLAP_MODES:
        raise ConfigError(f"train_overlap must be one of {', '.join(OVERLAP_MODES)}, got {train_overlap!r}")
    entries = read_list_entries(split_list_path(data_dir, split))
    if split == "train" and train_overlap == "exclude":
        held_out = set()
        for other in ("val", "test"):
            other_path = Path(data_dir) / f"{other}.txt"
            if other_path.is_file():
                held_out.update(_entry_key(e) for e in read_list_entries(other_path))
        entries = [e for e in entries if _entry_key(e) not in held_out]
    return entries


def _entry_key(entry: str) -> str:
    """An entry's image id: ``07070``, ``7070`` and ``7070.jpg`` are the same face."""
    return canonical_id(Path(entry).stem if Path(entry).suffix.lower() in IMAGE_EXTENSIONS else entry)


def _take(items: list, num_samples: int) -> list:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise ConfigError(f"num_samples must be an int (<= 0 for all), got {num_samples!r}")
    return items[:num_samples] if num_samples > 0 else items


class _ImageListDataset(Dataset):
    """Images given as a list of paths; subclasses fill ``paths`` (and optionally attributes)."""

    def __init__(self, paths: Sequence[Path], image_size, split: str, resize: str = "opencv"):
        self.image_size = parse_image_size(image_size)
        self.split = _check_split(split)
        if resize not in RESIZE_METHODS:
            raise ConfigError(f"resize must be one of {', '.join(RESIZE_METHODS)}, got {resize!r}")
        self.resize = resize
        self.paths = list(paths)
        self.names = [p.stem for p in self.paths]
        self.attr_names: Optional[list[str]] = None
        self._attrs: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.paths)

    def _index(self, index) -> int:
        n = len(self.paths)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {n}")
        return index

    #: ``load(index, flip=True)`` mirrors before resizing (used by the training augmentation).
    flip_before_resize = True

    def __getitem__(self, index) -> dict:
        return self.load(index)

    def load(self, index, flip: bool = False) -> dict:
        """Sample ``index``; ``flip`` mirrors the decoded image horizontally before the resize."""
        index = self._index(index)
        s = self.image_size
        sample = {
            "image": load_image(self.paths[index], s, self.resize, flip=flip),
            "mask": torch.ones(1, s, s, dtype=torch.float32),
            "index": index,
            "name": self.names[index],
        }
        if self._attrs is not None:
            sample["attrs"] = self._attrs[index].clone()
        return sample

    def _load_attributes(self, attr_file: PathLike) -> None:
        # Looked up at call time (not at import): the reader can be swapped in sys.modules.
        from data_loader.attributes import read_attribute_file

        attr_file = Path(attr_file)
        if not attr_file.is_file():
            raise ImageError(f"attribute file not found: {attr_file}; put CelebAMask-HQ-attribute-anno.txt "
                             "(from the CelebAMask-HQ release) there")
        names, table = read_attribute_file(attr_file)
        rows, missing = [], []
        for path in self.paths:
            row = None
            cid = canonical_id(path.stem)
            for key in (path.name, path.stem, path.stem + ".jpg", cid + path.suffix, cid, cid + ".jpg"):
                if key in table:
                    row = table[key]
                    break
            if row is None:
                missing.append(path.name)
            else:
                rows.append(torch.as_tensor(row).reshape(-1) > 0)
        if missing:
            raise ImageError(f"{len(missing)} image(s) of the {self.split} split have no entry in {attr_file} "
                             f"(first: {missing[0]})")
        self.attr_names = list(names)
        if rows:
            self._attrs = torch.stack(rows).float()
        else:
            self._attrs = torch.zeros(0, len(names))


class CelebAHQDataset(_ImageListDataset):
    """CelebA-HQ (or any data set laid out the same way) from official split lists.

    ``data_dir`` holds ``train.txt``/``val.txt`` (optionally ``test.txt``); ``image_dir`` holds
    the images (ids resolve to ``str(int(id)) + default_ext`` as the release, or to the zero-padded
    file when only that exists). ``image_size``: int or ``[S, S]``. ``num_samples > 0`` keeps the
    first N entries. ``attr_file``: optional ``CelebAMask-HQ-attribute-anno.txt``; adds
    ``"attrs"`` and ``attr_names`` (looked up by the release's name ``<int id>.jpg`` too).
    ``resize``: ``opencv`` (default, official) or ``antialias``."""

    default_ext = ".jpg"
    label = "CelebA-HQ"
    image_hint = "<int id>.jpg, e.g. 7070.jpg for list id 07070 (1024 px CelebA-HQ images, e.g. CelebAMask-HQ/CelebA-HQ-img)"

    def __init__(self, data_dir: PathLike, image_dir: PathLike, image_size: Union[int, Sequence[int]],
                 split: str = "train", num_samples: int = -1, train_overlap: str = "exclude",
                 attr_file: Optional[PathLike] = None, resize: str = "opencv"):
        _check_split(split)
        parse_image_size(image_size)
        self.data_dir, self.image_dir = Path(data_dir), Path(image_dir)
        self.train_overlap = train_overlap
        entries = _take(split_entries(self.data_dir, split, train_overlap), num_samples)
        if not self.image_dir.is_dir():
            raise ImageError(f"{self.label} image folder (image_dir) not found: {self.image_dir}; put the "
                             f"images there as {self.image_hint}")
        existing = set(os.listdir(self.image_dir))
        paths = [resolve_entry(self.image_dir, e, self.default_ext, existing) for e in entries]
        super().__init__(paths, image_size, split, resize)
        if not self.paths:
            raise ImageError(f"the {split} split of {self.label} in {self.data_dir} is empty")
        if not self.paths[0].is_file():
            raise ImageError(f"{self.label} image not found: {self.paths[0]} (first entry of the {split} "
                             f"list); image_dir {self.image_dir} should contain {self.image_hint}")
        if attr_file is not None:
            self._load_attributes(attr_file)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, n={len(self)}, size={self.image_size}, "
                f"image_dir={str(self.image_dir)!r})")


class FFHQDataset(CelebAHQDataset):
    """FFHQ from its split lists (``train.txt`` 65,000 / ``val.txt`` 3,000 / ``test.txt`` 2,000
    file names such as ``30047.png``); bare ids resolve to ``<id>.png``."""

    default_ext = ".png"
    label = "FFHQ"
    image_hint = "NNNNN.png (1024 px FFHQ images, e.g. images1024x1024 flattened into one folder)"


class ImageFolderDataset(_ImageListDataset):
    """All images directly inside ``image_dir`` (sorted by name), split deterministically: the
    last ``val_fraction`` of the names are the validation set (also used for ``test``), the rest
    train. ``num_samples > 0`` keeps the first N of the split."""

    def __init__(self, image_dir: PathLike, image_size: Union[int, Sequence[int]], split: str = "train",
                 val_fraction: float = 0.1, num_samples: int = -1, resize: str = "opencv"):
        _check_split(split)
        parse_image_size(image_size)
        if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) \
                or not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise ImageError(f"image folder not found: {self.image_dir}; put the images "
                             f"({', '.join(IMAGE_EXTENSIONS)}) directly inside it")
        paths = list_images(self.image_dir)
        if not paths:
            raise ImageError(f"no images in {self.image_dir}; put image files "
                             f"({', '.join(IMAGE_EXTENSIONS)}) directly inside it")
        n_val = self.num_val(len(paths), val_fraction)
        chosen = paths[len(paths) - n_val:] if split in ("val", "test") else paths[:len(paths) - n_val]
        if not chosen:
            raise ImageError(f"the {split} split of {self.image_dir} is empty ({len(paths)} images, "
                             f"val_fraction {val_fraction}); add images or change val_fraction")
        super().__init__(_take(chosen, num_samples), image_size, split, resize)

    @staticmethod
    def num_val(n: int, val_fraction: float) -> int:
        """Validation images out of ``n``: round(n * f), at least 1 when f > 0 and n > 1, and
        always leaving at least one training image."""
        if val_fraction <= 0 or n < 2:
            return 0
        return min(max(1, int(round(n * val_fraction))), n - 1)

    def __repr__(self) -> str:
        return (f"ImageFolderDataset(split={self.split!r}, n={len(self)}, size={self.image_size}, "
                f"image_dir={str(self.image_dir)!r})")
