"""Where boundaries live and how they are reused: ``<checkpoint folder>/boundaries/<checkpoint
stem>/<Attribute>.pt`` (:func:`default_boundary_dir`). The component embeddings of the labelled faces
are cached beside them (``embeddings_<source>.pt``) so that fitting further attributes does not
re-encode the faces. Stored boundaries are reused unless ``refit`` is asked, the encoder weights
changed (SHA-1 fingerprint), another recipe or (explicitly) another label source is asked for.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from model.boxes import COMPONENTS
from model.checkpoint import atomic_save

from .labels import LabelSource, default_label_source
from .recipes import RECIPES, check_counts, fit_boundary
from .record import FORMAT, Boundary, BoundaryError

PathLike = Union[str, os.PathLike]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


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
    components = source.compute_embeddings(editor)
    try:
        atomic_save({"format": FORMAT + "/embeddings", "encoder_sha1": editor.fingerprint(),
                     "source": source.describe(), "components": components.float().contiguous()}, path)
    except OSError as e:
        log(f"notice: could not cache label embeddings in {path.parent} ({e.strerror})")
    return components


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
    components = label_embeddings(editor, s, boundary_dir, refit=refit, log=log)
    b = fit_boundary(components, labels, attr, s.describe(), editor.fingerprint(), seed=seed, recipe=recipe,
                     covariates=np.delete(table, col, axis=1) if recipe == "conditional" else None)
    path = boundary_path(boundary_dir, attr)
    try:
        b.save(path)
    except OSError as e:
        log(f"notice: could not store the boundary in {boundary_dir} ({e.strerror}); use --boundary_dir")
    log(f"fitted boundary {b.summary()} -> {path}")
    return b
