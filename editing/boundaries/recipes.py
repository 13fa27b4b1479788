"""How a boundary is fitted (IA-FaceS attribute manipulation).

For an attribute, each of the four component embeddings (``l_eye, r_eye, nose, mouth``; the eyes
separately) gets its own hyperplane separating faces with and without the attribute; its unit
normal ``n_i`` points toward the faces *with* it (the positive faces), and an edit is
``z[:, i] += alpha * n_i``. The recipe (``recipe=``, stored in the boundary's ``protocol``) decides
how the hyperplane is found: a linear SVM for ``release`` (``SVC``) and ``standardized``
(``LinearSVC``), the difference of the class means for ``mean``, a regression coefficient for
``conditional``.

- ``"release"`` (default): the release's, InterFaceGAN's recipe. Keep the first
  ``m = min(n_pos, n_neg)`` positive and negative faces (in source order), label them 1 / 0 and sort
  by label (positives first, stable); take ``chosen = min(int(0.47 * 2m), m)`` samples from each end,
  shuffle each end (seeded here, ``seed``; the release does not seed) and put ``int(0.7 * chosen)`` of
  each into training, the rest into validation; fit ``sklearn.svm.SVC(kernel='linear')`` (C = 1) on
  the *raw* embeddings; the normal is ``coef / ||coef||`` (float32).
- ``"standardized"``: the project's earlier fit, a ``LinearSVC`` on standardized embeddings of a
  seeded balanced draw (min(#with, #without, 0.47 N) faces per side, 70/30); the normal is mapped
  back to raw embedding space. Equal to the release only when every dimension has the same scale.
- ``"mean"``: no classifier: the difference of the class means (with minus without), on the
  release's selection and split, as a unit normal (the offset puts the boundary half-way between
  the means). The release's SVM normal separates the classes along whatever direction has the
  widest margin, often one of small spread that the decoder hardly reads; the mean difference is
  where faces with the attribute actually sit, so moving along it by the class gap moves an
  embedding to them (docs/study.md).
- ``"conditional"``: no classifier either: the mean recipe with the other labels held fixed: on the
  same faces, a linear regression (scikit-learn) of the embedding on all labels; the attribute's
  coefficient, as a unit normal, is its effect with the others unchanged (the offset as ``mean``).
  Where labels go together (a beard and a mustache; narrow and closed eyes), the class-mean
  difference carries both and an edit along it flips the companion too; the coefficient does not.
"""
from __future__ import annotations

import warnings
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from model.config import BOUNDARY_RECIPES

from .record import SELECT_RATIO, TRAIN_RATIO, Boundary, BoundaryError

RECIPES = BOUNDARY_RECIPES
DEFAULT_RECIPE = "release"  # fit_boundary's; get_boundary's is the checkpoint's (Editor.boundary_recipe)
MIN_PER_CLASS = 10  # fewer labelled faces with (or without) the attribute -> error


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
    """Fit one hyperplane per component. embeddings [N, 4, D] (the faces' component embeddings);
    labels [N] (bool / 0-1 / +-1, positive = attribute present). ``recipe``: ``release`` (default;
    SVC(kernel='linear') on raw embeddings, InterFaceGAN's 47 % / 70-30 selection, seeded),
    ``standardized`` (the earlier LinearSVC on standardized embeddings), ``mean`` (class-mean
    difference) or ``conditional`` (regression coefficient; needs ``covariates`` [N, K], the other
    labels); see the module docstring."""
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
