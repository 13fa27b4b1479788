"""Label sources: faces with known attribute labels, from which boundaries are fitted.

- SynthFaces (:class:`SynthFacesLabels`): N training-split faces rendered at the model's size with
  their exact labels; the default for checkpoints trained on SynthFaces;
- CelebA-HQ (:class:`CelebAHQLabels`): ``CelebAMask-HQ-attribute-anno.txt`` plus the image folder
  (the file names images ``<int id>.jpg``; zero-padded files are found too);
- id lists (:class:`ListLabels`): a positive and a negative list of faces (the release's
  ``boundary_lists/<attr>.txt`` and ``no_<attr>.txt``, CelebA-HQ training ids), the boundary being
  named after the positive attribute.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from data_loader import synthfaces as sf
from data_loader.attributes import read_attribute_file
from data_loader.synthfaces.dataset import SynthFacesDataset, label_matrix, render_batch
from utils.cli import progress
from utils.errors import ImageError
from utils.image_io import load_image, read_list_file

from .record import BoundaryError
from .recipes import MIN_PER_CLASS

DEFAULT_SYNTH_FACES = 2000
PathLike = Union[str, os.PathLike]


class LabelSource:
    """Labelled faces: ``attribute_names``, ``label_table() -> bool [N, n_attr]`` and
    ``compute_embeddings(editor) -> [N, 4, D]`` (their component embeddings). ``key`` names the
    source in cache files."""
    key: str
    attribute_names: Sequence[str]

    def describe(self) -> dict:
        raise NotImplementedError

    def canonical(self, attribute: str) -> str:
        """The source's spelling of ``attribute`` (case-insensitive); BoundaryError if unknown."""
        for a in self.attribute_names:
            if a.lower() == attribute.lower():
                return a
        raise BoundaryError(f"unknown attribute '{attribute}' for {self.describe()['type']} labels; valid: "
                            f"{', '.join(self.attribute_names)}")

    def label_table(self) -> np.ndarray:
        """bool [N, n_attr] in ``attribute_names`` order."""
        raise NotImplementedError

    def compute_embeddings(self, editor) -> Tensor:
        raise NotImplementedError


class FileLabels(LabelSource):
    """A label source over image files: ``files`` (paths) and ``_table`` (bool [N, n_attr]) set by
    the subclass; ``encode_desc`` names the progress bar."""
    files: list
    _table: np.ndarray
    encode_desc = "encoding label faces"

    def label_table(self) -> np.ndarray:
        return self._table

    def compute_embeddings(self, editor) -> Tensor:
        out = []
        for chunk in _progress_chunks(self.files, editor.batch_size, self.encode_desc):
            out.append(editor.encode(torch.stack([load_image(p, editor.size) for p in chunk]))[1])
        return torch.cat(out)


class SynthFacesLabels(LabelSource):
    """The first ``num`` faces of a SynthFaces split (data set ``seed``; default the training split,
    i.e. faces the model was trained on) rendered at ``size`` px, with their exact labels.
    ``splits``: the data set's ``num_train/num_val/num_test`` (they place the val/test splits)."""

    def __init__(self, size: int, num: int = DEFAULT_SYNTH_FACES, seed: int = 0, split: str = "train",
                 splits: Optional[dict] = None):
        if num < 2 * MIN_PER_CLASS:
            raise BoundaryError(f"--num_label_faces must be at least {2 * MIN_PER_CLASS} for SynthFaces labels, "
                                f"got {num}")
        sizes = {k: int(v) for k, v in (splits or {}).items() if k in ("num_train", "num_val", "num_test")}
        try:
            ids = SynthFacesDataset(size=size, split=split, seed=seed, **sizes).ids
        except ValueError as e:
            raise BoundaryError(f"SynthFaces labels: {e}") from None
        if len(ids) < num:
            raise BoundaryError(f"the SynthFaces {split} split has {len(ids)} faces; --num_label_faces {num} is "
                                "too many")
        self.size, self.num, self.seed, self.split = int(size), int(num), int(seed), split
        self.attribute_names = tuple(sf.ATTRIBUTES)
        self._indices = list(ids[:num])
        self.key = f"synthfaces_{split}{self._indices[0]}_seed{self.seed}_n{self.num}_{self.size}px"
        self._table: Optional[np.ndarray] = None

    def describe(self) -> dict:
        return {"type": "SynthFaces", "split": self.split, "seed": self.seed, "first_index": self._indices[0],
                "num_faces": self.num, "size": self.size}

    def label_table(self) -> np.ndarray:
        if self._table is None:
            self._table = label_matrix([sf.sample_factors(self.seed, i) for i in self._indices])
        return self._table

    def images(self, indices: Sequence[int]) -> Tensor:
        """Rendered faces [n, 3, S, S] in [-1, 1] (global face indices)."""
        return render_batch([sf.sample_factors(self.seed, i) for i in indices], self.size)

    def compute_embeddings(self, editor) -> Tensor:
        out = []
        for chunk in _progress_chunks(self._indices, editor.batch_size, "encoding SynthFaces label faces"):
            out.append(editor.encode(self.images(chunk))[1])
        return torch.cat(out)


class CelebAHQLabels(FileLabels):
    """CelebAMask-HQ attribute file (``label_file``) + the images it names in ``img_dir``; the first
    ``num`` listed images that exist (all when ``num`` is None)."""
    encode_desc = "encoding CelebA-HQ label faces"

    def __init__(self, label_file: PathLike, img_dir: PathLike, num: Optional[int] = None):
        label_file, img_dir = Path(label_file), Path(img_dir)
        if not label_file.is_file():
            raise BoundaryError(f"label file not found: {label_file}")
        if not img_dir.is_dir():
            raise BoundaryError(f"label image folder not found: {img_dir}")
        names, table = _read_attribute_file(label_file)
        self.attribute_names = tuple(names)
        files, rows = [], []
        for name, row in table.items():
            path = _find_image(img_dir, name)
            if path is None:
                continue
            files.append(path)
            rows.append(np.asarray(row) > 0)
            if num is not None and len(files) >= num:
                break
        if not files:
            raise BoundaryError(f"none of the {len(table)} images listed in {label_file} is in {img_dir}")
        self.files, self._table = files, np.stack(rows)
        self.label_file, self.img_dir, self.num = label_file, img_dir, len(files)
        tag = hashlib.sha1(f"{label_file.resolve()}|{img_dir.resolve()}|{self.num}".encode()).hexdigest()[:10]
        self.key = f"celebahq_n{self.num}_{tag}"

    def describe(self) -> dict:
        return {"type": "CelebAHQ", "label_file": str(self.label_file.resolve()),
                "img_dir": str(self.img_dir.resolve()), "num_faces": self.num}


def _find_image(img_dir: Path, name: str) -> Optional[Path]:
    """The image a label-file row names: ``7070.jpg`` as written, another extension, or a
    zero-padded file (``07070.jpg``) when only that exists."""
    p = img_dir / name
    if p.is_file():
        return p
    stem = Path(name).stem
    stems = [stem] + ([f"{int(stem):05d}"] if stem.isdigit() else [])
    for st in stems:
        for ext in (".jpg", ".png", ".jpeg", ".webp"):
            q = img_dir / (st + ext)
            if q.is_file():
                return q
    return None


class ListLabels(FileLabels):
    """Faces of a positive and a negative id list (the release's ``boundary_lists``: e.g.
    ``beard.txt`` and ``no_beard.txt``, CelebA-HQ training ids resolving to ``<int id>.jpg`` in
    ``img_dir``). The boundary's single attribute is ``attribute`` (default: the positive list's
    stem). Only the first ``m = min(n_pos, n_neg)`` faces of each list are used by the release's
    recipe, so only those are kept (``num`` caps m)."""
    encode_desc = "encoding the listed faces"

    def __init__(self, pos_list: PathLike, neg_list: PathLike, img_dir: Optional[PathLike] = None,
                 attribute: Optional[str] = None, num: Optional[int] = None):
        pos_list, neg_list = Path(pos_list), Path(neg_list)
        try:
            pos, neg = read_list_file(pos_list, img_dir), read_list_file(neg_list, img_dir)
        except ImageError as e:
            raise BoundaryError(str(e)) from None
        m = min(len(pos), len(neg), num if num else len(pos) + len(neg))
        if m < MIN_PER_CLASS:
            raise BoundaryError(f"the lists {pos_list.name} ({len(pos)}) and {neg_list.name} ({len(neg)}) need at "
                                f"least {MIN_PER_CLASS} faces each")
        pos, neg = pos[:m], neg[:m]
        missing = [p for p in pos + neg if not p.is_file()]
        if missing:
            raise BoundaryError(f"{len(missing)} face(s) of the lists are not in {missing[0].parent} (first: "
                                f"{missing[0].name}); give the CelebA-HQ image folder with --label_img_dir")
        self.attribute = attribute or pos_list.stem
        self.attribute_names = (self.attribute,)
        self.files = pos + neg
        self._table = np.array([[True]] * m + [[False]] * m)
        self.pos_list, self.neg_list, self.num = pos_list, neg_list, m
        self.img_dir = Path(img_dir) if img_dir is not None else pos_list.parent
        tag = hashlib.sha1(f"{pos_list.resolve()}|{neg_list.resolve()}|{self.img_dir.resolve()}|{m}".encode()
                           ).hexdigest()[:10]
        self.key = f"lists_{pos_list.stem}_{neg_list.stem}_n{m}_{tag}"

    def describe(self) -> dict:
        return {"type": "lists", "positive_list": str(self.pos_list.resolve()),
                "negative_list": str(self.neg_list.resolve()), "img_dir": str(self.img_dir.resolve()),
                "num_faces": 2 * self.num, "per_list": self.num}


def _read_attribute_file(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """(attribute names, {image file name: int8 +-1 vector}) of a CelebAMask-HQ attribute file."""
    try:
        names, table = read_attribute_file(path)
    except (ValueError, OSError) as e:  # UnicodeDecodeError is a ValueError
        raise BoundaryError(f"cannot read label file {path}: {str(e).splitlines()[0] if str(e) else e}") from None
    return list(names), table


def _progress_chunks(items: Sequence, n: int, desc: str):
    bar = progress(len(items), desc)
    try:
        for i in range(0, len(items), n):
            chunk = items[i:i + n]
            yield chunk
            bar.update(len(chunk))
    finally:
        bar.close()


def default_label_source(editor, label_file: Optional[PathLike] = None, label_img_dir: Optional[PathLike] = None,
                         num_label_faces: Optional[int] = None, label_source: str = "auto") -> LabelSource:
    """Pick the label source: CelebA-HQ when a label file is given (or ``label_source='celebahq'``),
    SynthFaces when asked or when the checkpoint was trained on SynthFaces."""
    if label_source not in ("auto", "synthfaces", "celebahq"):
        raise BoundaryError(f"unknown label source '{label_source}'; choose from auto, synthfaces, celebahq")
    if label_source == "celebahq" or (label_source == "auto" and label_file):
        if not label_file or not label_img_dir:
            raise BoundaryError("CelebA-HQ labels need --label_file (CelebAMask-HQ-attribute-anno.txt) and "
                                "--label_img_dir (the CelebA-HQ image folder)")
        return CelebAHQLabels(label_file, label_img_dir, num_label_faces)
    if label_source == "synthfaces" or editor.data_set_type == "SynthFaces":
        ds = editor.config.get("data_set") if editor.data_set_type == "SynthFaces" else None
        ds_args = dict((ds or {}).get("args") or {})
        return SynthFacesLabels(editor.size, num_label_faces or _default_synth_faces(), int(ds_args.get("seed", 0)),
                                splits=ds_args)
    raise BoundaryError(
        "this checkpoint was not trained on SynthFaces, so fitting a boundary needs labelled faces: give "
        "--label_file CelebAMask-HQ-attribute-anno.txt --label_img_dir <CelebA-HQ images> (or --label_source "
        "synthfaces)")


def _default_synth_faces() -> int:
    """``DEFAULT_SYNTH_FACES`` as the package ``editing.boundaries`` holds it when called, so that the
    package's name stays the one setting (tests lower it there for a quick fit)."""
    from .. import boundaries

    return boundaries.DEFAULT_SYNTH_FACES
