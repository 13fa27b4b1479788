"""Attribute boundaries in component-embedding space (IA-FaceS attribute manipulation).

For an attribute, each of the four component embeddings (``l_eye, r_eye, nose, mouth``; the eyes
separately) gets its own linear SVM separating faces with and without the attribute; its unit
normal ``n_i`` points toward the faces *with* it (the positive faces), and an edit is
``z[:, i] += alpha * n_i``.

Recipes (``recipe=``, stored in the boundary's ``protocol``):

- ``"release"`` (default): the release's, InterFaceGAN's recipe. Keep the first
  ``m = min(n_pos, n_neg)`` positive and negative faces (in source order), label them 1 / 0 and sort
  by label (positives first, stable); take ``chosen = min(int(0.47 * 2m), m)`` samples from each end,
  shuffle each end (seeded here, ``seed``; the release does not seed) and put ``int(0.7 * chosen)`` of
  each into training, the rest into validation; fit ``sklearn.svm.SVC(kernel='linear')`` (C = 1) on
  the *raw* embeddings; the normal is ``coef / ||coef||`` (float32).
- ``"standardized"``: the project's earlier fit, a ``LinearSVC`` on standardized embeddings of a
  seeded balanced draw (min(#with, #without, 0.47 N) faces per side, 70/30); the normal is mapped
  back to raw embedding space. Equal to the release only when every dimension has the same scale.
- ``"mean"``: the difference of the class means (with minus without), on the release's selection
  and split, as a unit normal (the offset puts the boundary half-way between the means). An SVM
  normal separates the classes along whatever direction has the widest margin, often one of small
  spread that the decoder hardly reads; the mean difference is where faces with the attribute
  actually sit, so moving along it by the class gap moves an embedding to them (docs/study.md).
- ``"conditional"``: the mean recipe with the other labels held fixed: on the same faces, a linear
  regression (scikit-learn) of the embedding on all labels; the attribute's coefficient, as a unit
  normal, is its effect with the others unchanged. Where labels go together (a beard and a
  mustache; narrow and closed eyes), the class-mean difference carries both and an edit along it
  flips the companion too; the coefficient does not.

Labels come from
- SynthFaces (``SynthFacesLabels``): N training-split faces rendered at the model's size with their
  exact labels; the default for checkpoints trained on SynthFaces;
- CelebA-HQ (``CelebAHQLabels``): ``CelebAMask-HQ-attribute-anno.txt`` plus the image folder (the
  file names images ``<int id>.jpg``; zero-padded files are found too);
- id lists (``ListLabels``): a positive and a negative list of faces (the release's
  ``boundary_lists/<attr>.txt`` and ``no_<attr>.txt``, CelebA-HQ training ids), the boundary being
  named after the positive attribute.

Storage: ``<checkpoint folder>/boundaries/<checkpoint stem>/<Attribute>.pt``, a plain dict readable
with ``torch.load(path, weights_only=True)`` (see ``Boundary.to_dict``). The component embeddings
of the labelled faces are cached beside them (``embeddings_<source>.pt``) so that fitting further
attributes does not re-encode the faces. Stored boundaries are reused unless ``refit`` is asked,
the encoder weights changed (SHA-1 fingerprint), another recipe or (explicitly) another label
source is asked for.
"""
from __future__ import annotations

import hashlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from data_loader import synthfaces as sf
from data_loader.attributes import read_attribute_file
from data_loader.synthfaces.dataset import SynthFacesDataset, label_matrix, render_batch
from model.boxes import COMPONENTS
from model.config import BOUNDARY_RECIPES
from model.checkpoint import atomic_save
from utils.cli import progress
from utils.errors import EditingError
from utils.image_io import load_image

FORMAT = "iafaces-boundary/1"
SELECT_RATIO = 0.47  # at most this share of the labelled faces on each side
TRAIN_RATIO = 0.7  # train / validation split of the selected faces
RECIPES = BOUNDARY_RECIPES
DEFAULT_RECIPE = "release"  # fit_boundary's; get_boundary's is the checkpoint's (Editor.boundary_recipe)
MIN_PER_CLASS = 10  # fewer labelled faces with (or without) the attribute -> error
DEFAULT_SYNTH_FACES = 2000
PathLike = Union[str, os.PathLike]


class BoundaryError(EditingError):
    """A boundary cannot be fitted or loaded (too few labelled faces, unknown attribute, ...)."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


# ------------------------------------------------------------------------------------ Boundary
@dataclass
class Boundary:
    """Unit normals ``normals [4, D]`` (one per component, order ``l_eye, r_eye, nose, mouth``) and
    offsets ``[4]`` such that ``z_i . n_i + offset_i > 0`` predicts the attribute from component i."""
    attribute: str
    normals: Tensor
    offsets: Tensor
    val_accuracy: list[float]
    train_accuracy: list[float]
    counts: dict[str, int]
    source: dict
    fingerprint: str = ""
    path: Optional[str] = field(default=None, compare=False)
    protocol: dict = field(default_factory=dict)

    @property
    def recipe(self) -> str:
        """The fitting recipe (``release`` or ``standardized``; boundaries stored before recipes
        were recorded were fitted with the standardized LinearSVC)."""
        return self.protocol.get("recipe", "standardized")

    def decision(self, components: Tensor) -> Tensor:
        """components [B, 4, D] -> signed distances [B, 4] (positive: attribute predicted)."""
        return (components.float() * self.normals[None].to(components.device)).sum(-1) + self.offsets.to(components.device)

    def to_dict(self) -> dict:
        """Plain dict (tensors, str, numbers, lists): loadable with ``weights_only=True``."""
        return {
            "format": FORMAT, "attribute": self.attribute, "components": list(COMPONENTS),
            "normals": self.normals.float().cpu().contiguous(), "offsets": self.offsets.float().cpu().contiguous(),
            "val_accuracy": [float(a) for a in self.val_accuracy],
            "train_accuracy": [float(a) for a in self.train_accuracy],
            "counts": {k: int(v) for k, v in self.counts.items()},
            "source": dict(self.source), "encoder_sha1": self.fingerprint,
            "protocol": dict(self.protocol) or {"recipe": "standardized", "select_ratio": SELECT_RATIO,
                                                "train_ratio": TRAIN_RATIO, "classifier": "LinearSVC"},
        }

    @classmethod
    def from_dict(cls, d: dict, path: Optional[str] = None) -> "Boundary":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise BoundaryError(f"{path or 'boundary'}: not a boundary file of format {FORMAT}")
        protocol = dict(d.get("protocol") or {})
        protocol.setdefault("recipe", "standardized")
        return cls(d["attribute"], d["normals"].float(), d["offsets"].float(), list(d["val_accuracy"]),
                   list(d["train_accuracy"]), dict(d["counts"]), dict(d["source"]), d.get("encoder_sha1", ""),
                   path, protocol)

    def save(self, path: PathLike) -> None:
        atomic_save(self.to_dict(), path)
        self.path = str(path)

    @classmethod
    def load(cls, path: PathLike) -> "Boundary":
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # corrupt or foreign file
            raise BoundaryError(f"cannot read boundary file {path}: {e.__class__.__name__}; delete it or use "
                                "--refit") from None
        return cls.from_dict(d, str(path))

    def summary(self) -> str:
        acc = ", ".join(f"{c} {a:.2f}" for c, a in zip(COMPONENTS, self.val_accuracy))
        return (f"{self.attribute}: {self.counts['positive']} with / {self.counts['negative']} without, "
                f"{self.counts['train']} train + {self.counts['val']} val ({self.recipe} recipe); val accuracy {acc}")


# --------------------------------------------------------------------------------------- fitting
def check_counts(labels: np.ndarray, attribute: str) -> None:
    """BoundaryError unless at least MIN_PER_CLASS faces have and lack the attribute."""
    y = np.asarray(labels) > 0
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        raise BoundaryError(
            f"too few labelled faces to fit a boundary for '{attribute}': {n_pos} with and {n_neg} without "
            f"it among {len(y)}; at least {MIN_PER_CLASS} of each are needed (use more label faces, e.g. "
            "--num_label_faces)")


def release_split(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The release's (InterFaceGAN's) sample selection -> (train indices, val indices, m, chosen).

    The first ``m = min(n_pos, n_neg)`` positives and negatives (source order) are kept and sorted by
    label, positives first (stable); ``chosen = min(int(0.47 * 2m), m)`` from each end; each end is
    shuffled with ``numpy.random.default_rng(seed)`` and its first ``int(0.7 * chosen)`` go to
    training, the rest to validation. Indices refer to ``labels``; training holds positives then
    negatives."""
    y = np.asarray(labels) > 0
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    m = min(len(pos), len(neg))
    ordered = np.concatenate([pos[:m], neg[:m]])  # sorted by label, descending, stable
    chosen = min(int(SELECT_RATIO * 2 * m), m)
    n_train = int(TRAIN_RATIO * chosen)
    rng = np.random.default_rng(seed)
    top = ordered[:chosen][rng.permutation(chosen)]
    bottom = ordered[len(ordered) - chosen:][rng.permutation(chosen)]
    train = np.concatenate([top[:n_train], bottom[:n_train]])
    val = np.concatenate([top[n_train:], bottom[n_train:]])
    return train, val, m, chosen


def fit_boundary(embeddings: Union[Tensor, np.ndarray], labels: Union[Tensor, np.ndarray], attribute: str,
                 source: Optional[dict] = None, fingerprint: str = "", seed: int = 0, C: float = 1.0,
                 recipe: str = DEFAULT_RECIPE, covariates: Union[Tensor, np.ndarray, None] = None) -> Boundary:
    """Fit one hyperplane per component. embeddings [N, 4, D]; labels [N] (bool / 0-1 / +-1,
    positive = attribute present). ``recipe``: ``release`` (default; SVC(kernel='linear') on raw
    embeddings, InterFaceGAN's 47 % / 70-30 selection, seeded), ``standardized`` (the earlier
    LinearSVC on standardized embeddings), ``mean`` or ``conditional`` (needs ``covariates``
    [N, K], the other labels); see the module docstring."""
    if recipe not in RECIPES:
        raise BoundaryError(f"unknown boundary recipe '{recipe}'; choose from {', '.join(RECIPES)}")
    X = torch.as_tensor(embeddings).double().cpu().numpy()
    y = np.asarray(torch.as_tensor(labels).cpu().numpy()) > 0
    if X.ndim != 3 or X.shape[0] != y.shape[0]:
        raise ValueError(f"embeddings must be [N, 4, D] and labels [N], got {X.shape} and {y.shape}")
    n = len(y)
    check_counts(y, attribute)
    if recipe == "conditional":
        if covariates is None:
            raise BoundaryError("the conditional recipe needs the other labels (covariates)")
        cov = np.asarray(torch.as_tensor(covariates).cpu().numpy(), dtype=np.float64).reshape(n, -1)
    if recipe in ("release", "mean", "conditional"):
        tr, va, m, k = release_split(y, seed)
        protocol = {"recipe": "release", "classifier": "sklearn.svm.SVC(kernel='linear', C=%g)" % C,
                    "embeddings": "raw", "select_ratio": SELECT_RATIO, "train_ratio": TRAIN_RATIO,
                    "selection": "first m = min(n_pos, n_neg) of each class, chosen = min(int(0.47 * 2m), m) "
                                 "per end, int(0.7 * chosen) per end for training", "seed": int(seed)}
        if recipe == "mean":
            protocol.update(recipe="mean", classifier="difference of the class means (with - without)")
        if recipe == "conditional":
            protocol.update(recipe="conditional", classifier="sklearn.linear_model.LinearRegression of the "
                            "embedding on all labels: the attribute's coefficient", covariates=int(cov.shape[1]))
    else:
        pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
        k = min(len(pos), len(neg), max(int(SELECT_RATIO * n), MIN_PER_CLASS))
        rng = np.random.default_rng(seed)
        pos, neg = rng.permutation(pos)[:k], rng.permutation(neg)[:k]
        n_tr = min(max(int(round(TRAIN_RATIO * k)), 1), k - 1)
        tr = np.concatenate([pos[:n_tr], neg[:n_tr]])
        va = np.concatenate([pos[n_tr:], neg[n_tr:]])
        protocol = {"recipe": "standardized", "classifier": "sklearn.svm.LinearSVC(C=%g)" % C,
                    "embeddings": "standardized", "select_ratio": SELECT_RATIO, "train_ratio": TRAIN_RATIO,
                    "seed": int(seed)}
    normals, offsets, val_acc, train_acc = [], [], [], []
    for i in range(X.shape[1]):
        Xi = X[:, i]
        w, b = _fit_component(Xi[tr], y[tr], recipe, C, seed, cov[tr] if recipe == "conditional" else None)
        norm = float(np.linalg.norm(w))
        if not np.isfinite(norm) or norm == 0.0:
            # A degenerate embedding (e.g. constant): no direction can be derived.
            normals.append(np.zeros_like(w))
            offsets.append(0.0)
            val_acc.append(0.5)
            train_acc.append(0.5)
            continue
        unit = (w / norm).astype(np.float32) if recipe != "standardized" else w / norm  # the release: float32
        normals.append(unit)
        offsets.append(b / norm)
        val_acc.append(float(((Xi[va] @ w + b > 0) == y[va]).mean()) if len(va) else float("nan"))
        train_acc.append(float(((Xi[tr] @ w + b > 0) == y[tr]).mean()))
    counts = {"labelled": n, "positive": int(y.sum()), "negative": int((~y).sum()), "per_class": int(k),
              "train": len(tr), "val": len(va)}
    return Boundary(attribute, torch.from_numpy(np.stack(normals).astype(np.float32)).float(),
                    torch.tensor(offsets).float(), val_acc, train_acc, counts, dict(source or {}), fingerprint,
                    protocol=protocol)


def _fit_component(X: np.ndarray, y: np.ndarray, recipe: str, C: float, seed: int,
                   cov: Optional[np.ndarray] = None) -> tuple[np.ndarray, float]:
    """(w, b) of one component's hyperplane ``w . x + b`` in raw embedding space."""
    # scikit-learn is a heavy import, needed only when a boundary is fitted.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LinearRegression
    from sklearn.svm import SVC, LinearSVC

    if recipe in ("mean", "conditional"):
        mu_p, mu_n = X[y].mean(0), X[~y].mean(0)
        if recipe == "mean":
            w = mu_p - mu_n
        else:  # embedding ~ labels: the attribute's column is its effect with the other labels fixed
            w = LinearRegression().fit(np.column_stack([y.astype(np.float64), cov]), X).coef_[:, 0]
        return w, -float(w @ (mu_p + mu_n)) / 2
    if recipe == "release":
        clf = SVC(kernel="linear", C=C)
        clf.fit(X, y.astype(np.int64))
        return clf.coef_.reshape(-1).astype(np.float64), float(clf.intercept_[0])
    # Standardize with the training statistics (C then means the same for any embedding scale) and
    # map the hyperplane back: w.(x - mu)/sd + b = (w/sd).x + (b - w.mu/sd).
    mu, sd = X.mean(0), X.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    clf = LinearSVC(C=C, dual="auto", max_iter=20000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit((X - mu) / sd, y)
    w = clf.coef_[0].astype(np.float64) / sd
    return w, float(clf.intercept_[0]) - float(w @ mu)


# ---------------------------------------------------------------------------------- label sources
class LabelSource:
    """Labelled faces: ``attribute_names``, ``labels(attr) -> bool [N]`` and
    ``embeddings(editor) -> [N, 4, D]``. ``key`` names the source in cache files."""
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
        from utils.errors import ImageError
        from utils.image_io import read_list_file

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
        return SynthFacesLabels(editor.size, num_label_faces or DEFAULT_SYNTH_FACES, int(ds_args.get("seed", 0)),
                                splits=ds_args)
    raise BoundaryError(
        "this checkpoint was not trained on SynthFaces, so fitting a boundary needs labelled faces: give "
        "--label_file CelebAMask-HQ-attribute-anno.txt --label_img_dir <CelebA-HQ images> (or --label_source "
        "synthfaces)")


# ---------------------------------------------------------------------------------------- storage
def default_boundary_dir(checkpoint: PathLike) -> Path:
    """``<checkpoint folder>/boundaries/<checkpoint stem>``."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent / "boundaries" / checkpoint.stem


def boundary_path(boundary_dir: PathLike, attribute: str) -> Path:
    return Path(boundary_dir) / f"{attribute}.pt"


def find_stored(boundary_dir: PathLike, attribute: str) -> Optional[Path]:
    """A stored boundary file for ``attribute`` (case-insensitive match), if any."""
    d = Path(boundary_dir)
    exact = boundary_path(d, attribute)
    if exact.is_file():
        return exact
    if d.is_dir():
        for p in d.glob("*.pt"):
            if p.stem.lower() == attribute.lower() and not p.stem.startswith("embeddings_"):
                return p
    return None


def label_embeddings(editor, source: LabelSource, boundary_dir: PathLike, refit: bool = False,
                     log: Callable[[str], None] = _log) -> Tensor:
    """Component embeddings [N, 4, D] of the source's faces, cached in ``boundary_dir``."""
    path = Path(boundary_dir) / f"embeddings_{source.key}.pt"
    if path.is_file() and not refit:
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            if d.get("encoder_sha1") == editor.fingerprint() and d.get("source") == source.describe():
                return d["components"].float()
        except Exception:
            pass
    log(f"encoding {source.describe()['num_faces']} labelled faces ({source.describe()['type']})")
    z = source.compute_embeddings(editor)
    try:
        atomic_save({"format": FORMAT + "/embeddings", "encoder_sha1": editor.fingerprint(),
                     "source": source.describe(), "components": z.float().contiguous()}, path)
    except OSError as e:
        log(f"notice: could not cache label embeddings in {path.parent} ({e.strerror})")
    return z


def get_boundary(editor, attribute: str, boundary_dir: Optional[PathLike] = None, refit: bool = False,
                 source: Union[LabelSource, Callable[[], LabelSource], None] = None, explicit_source: bool = False,
                 log: Callable[[str], None] = _log, recipe: Optional[str] = None, seed: int = 0) -> Boundary:
    """The boundary of ``attribute`` for ``editor``'s model: loaded from ``boundary_dir`` (default
    :func:`default_boundary_dir` of the checkpoint) when stored and valid, else fitted and stored.

    ``source``: a LabelSource or a callable that makes one (called only when fitting); default
    :func:`default_label_source`. ``explicit_source``: the caller asked for that source, so a boundary
    stored from another source is refitted. ``recipe``/``seed``: see :func:`fit_boundary`; a stored
    boundary of another recipe is refitted; ``recipe`` None: the checkpoint's
    (:attr:`Editor.boundary_recipe`)."""
    if recipe is None:
        recipe = editor.boundary_recipe
    if recipe not in RECIPES:
        raise BoundaryError(f"unknown boundary recipe '{recipe}'; choose from {', '.join(RECIPES)}")
    if boundary_dir is None:
        if not editor.checkpoint:
            raise BoundaryError("give boundary_dir when the editor has no checkpoint path")
        boundary_dir = default_boundary_dir(editor.checkpoint)
    boundary_dir = Path(boundary_dir)
    stored = None if refit else find_stored(boundary_dir, attribute)
    src: Optional[LabelSource] = source if isinstance(source, LabelSource) else None

    def make_source() -> LabelSource:
        nonlocal src
        if src is None:
            src = source() if callable(source) else default_label_source(editor)
        return src

    b = None
    if stored is not None:
        try:
            b = Boundary.load(stored)
        except (BoundaryError, KeyError) as e:
            log(f"notice: {str(e) or stored} (unreadable stored boundary); refitting")
    if b is not None:
        if b.fingerprint != editor.fingerprint():
            log(f"notice: the stored boundary {stored} was fitted for other encoder weights; refitting")
        elif explicit_source and b.source != make_source().describe():
            log(f"notice: the stored boundary {stored} comes from other labels ({b.source.get('type')}); refitting")
        elif tuple(b.normals.shape) != (len(COMPONENTS), editor.comp_dim):
            log(f"notice: the stored boundary {stored} has the wrong shape; refitting")
        elif b.recipe != recipe:
            log(f"notice: the stored boundary {stored} was fitted with the {b.recipe} recipe; refitting with the "
                f"{recipe} recipe")
        else:
            return b
    s = make_source()
    attr = s.canonical(attribute)
    table = s.label_table()
    col = list(s.attribute_names).index(attr)
    labels = table[:, col]
    check_counts(labels, attr)  # before the (slow) encoding
    z = label_embeddings(editor, s, boundary_dir, refit=refit, log=log)
    b = fit_boundary(z, labels, attr, s.describe(), editor.fingerprint(), seed=seed, recipe=recipe,
                     covariates=np.delete(table, col, axis=1) if recipe == "conditional" else None)
    path = boundary_path(boundary_dir, attr)
    try:
        b.save(path)
    except OSError as e:
        log(f"notice: could not store the boundary in {boundary_dir} ({e.strerror}); use --boundary_dir")
    log(f"fitted boundary {b.summary()} -> {path}")
    return b
