"""The release's IFG and MSE_irr (``evaluation/d_score.py`` of the IA-FaceS release), computed as
the paper's numbers were.

What the release does (``d_score.py``, ``utils/tools.py: load_d_model``, ``d_score.sh``):

* the discriminator is rosinality's StyleGAN2 ``Discriminator(256, channel_multiplier=2)`` holding
  the ``"d"`` entry of a ``latest.pt`` (a 256-px StyleGAN2 trained on the data set); the release
  loads it with ``strict=False``, here every key must be present;
* each image is read from its file with ``cv2.imread`` (8-bit BGR) and turned to RGB, resized to
  256 x 256 by albumentations' ``Resize`` (its default ``cv2.INTER_LINEAR``, on the uint8 image;
  an image already 256 px is left as it is), normalised by ``Normalize(mean=0.5, std=0.5)`` with
  its default ``max_pixel_value=255``, i.e. ``(x - 127.5) / 127.5``, and scored alone (batch 1:
  the minibatch-stddev feature is the constant 1e-4);
* pairs: every file of the edited folder with the file of the same name in the source
  (reconstruction) folder, in ``os.listdir`` order (only means are reported, so order is moot);
* IFG = mean D(edited) - mean D(source); MSE_irr = the mean over pairs of
  ``F.mse_loss(source * mask, edited * mask)``, mask 0 in the edited components' 256-px boxes
  (the mean over all 3 x 256 x 256 values);
* it prints the boxes' indices, MSE_irr and IFG, and appends ``'%f'`` lines to ``mse_score.txt``
  and ``d_score_drop.txt`` in ``--out_dir`` (the curve files ``evaluation.curves`` reads).

Entry points: :func:`load_release_discriminator`, :func:`score_ifg_release`,
:func:`release_scores`, :func:`release_pairs`, :func:`read_release_image`.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor

from model.boxes import ComponentSpec, component_indices
from model.checkpoint import is_iafaces_checkpoint
from utils.errors import MetricError
from utils.image_io import ImageNotFoundError, ImageUnreadableError, array_to_tensor, list_images, resize_uint8
from utils.safe_load import is_torchscript_file

from .discriminators import (KIND_WORDS, RELEASE_CHANNEL_MULTIPLIER, RELEASE_SIZE, StyleGAN2Discriminator,
                             discriminator_kind, read_discriminator_file, stylegan2_state)
from .metrics import mse_irr

PathLike = Union[str, Path]

#: The one line every refusal starts with: the file the paper's IFG needs.
NEEDS = ("the paper's IFG needs the release's discriminator: latest.pt of a 256-px StyleGAN2 trained on the "
         "data set, in rosinality's stylegan2-pytorch format (its 'd' entry)")


def load_release_discriminator(path: Optional[PathLike], device=torch.device("cpu")) -> StyleGAN2Discriminator:
    """The release's IFG discriminator from ``path`` (a rosinality ``latest.pt`` or its bare ``d``
    state_dict), read as weights only, eval mode, frozen. Anything else (no path, a missing file,
    TorchScript, an IA-FaceS checkpoint, a StyleGAN2 D of another size or width) is refused with
    one line naming the file it needs; there is no fallback to another network."""
    if path is None or not str(path):
        raise MetricError(f"{NEEDS}; pass its path")
    path = Path(path)
    if not path.is_file():
        raise MetricError(f"{NEEDS}; {path} does not exist")
    if is_torchscript_file(path):
        raise MetricError(f"{NEEDS}; {path} is a TorchScript file")
    try:
        raw = read_discriminator_file(path)
    except MetricError as e:
        raise MetricError(f"{NEEDS}; {e}") from None
    state = stylegan2_state(raw)
    if state is None:
        held = ("an IA-FaceS checkpoint, whose own discriminator is not the paper's" if is_iafaces_checkpoint(raw)
                else "no StyleGAN2 discriminator")
        raise MetricError(f"{NEEDS}; {path} holds {held}")
    try:
        net = StyleGAN2Discriminator.from_state_dict(state, f"{path}: d")
    except MetricError as e:
        raise MetricError(f"{NEEDS}; {e}") from None
    if net.kind != "release":
        raise MetricError(f"{NEEDS}; {path} holds {net.describe()}, the release's is {RELEASE_SIZE} px with "
                          f"channel multiplier {RELEASE_CHANNEL_MULTIPLIER}")
    return net.to(device).eval().requires_grad_(False)


def check_release_discriminator(net: Optional[torch.nn.Module]) -> None:
    """MetricError unless ``net`` is the release's discriminator (kind ``"release"``)."""
    if net is None:
        raise MetricError(f"{NEEDS}; none was given")
    if discriminator_kind(net) != "release":
        raise MetricError(f"{NEEDS}; got {KIND_WORDS[discriminator_kind(net)]}")


def read_release_image(path: PathLike, size: int = RELEASE_SIZE) -> Tensor:
    """An image file as the release's ``process_img`` gives it to D: float32 [1, 3, size, size] in
    [-1, 1]. ``cv2.imread`` (8-bit, alpha dropped) -> RGB -> ``cv2.resize`` INTER_LINEAR on the
    uint8 image (none at ``size``) -> ``(x - 127.5) / 127.5``."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ImageNotFoundError(f"image not found: {path}", path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageUnreadableError(f"cannot read image {path} with OpenCV (the release's reader)", path,
                                   "cv2.imread", False)
    return array_to_tensor(resize_uint8(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, "opencv"))[None]


class ReleaseScores(NamedTuple):
    """What :func:`release_scores` returns: IFG and the per-pair scores [N] (float64) of the edited
    and the source images (None without a discriminator), and MSE_irr (None without components)."""
    ifg: Optional[float]
    edited: Optional[Tensor]
    source: Optional[Tensor]
    mse_irr: Optional[float]


@torch.no_grad()
def release_scores(edited_files: Sequence[PathLike], source_files: Sequence[PathLike],
                   discriminator: Optional[torch.nn.Module] = None,
                   components: Optional[ComponentSpec] = None) -> ReleaseScores:
    """The release's ``d_score.py`` over the pairs ``(edited_files[k], source_files[k])``: each file
    read by :func:`read_release_image`, scored alone by the release's ``discriminator`` (refused
    otherwise) and, with ``components``, MSE_irr with their 256-px boxes zeroed."""
    edited_files, source_files = list(edited_files), list(source_files)
    if len(edited_files) != len(source_files):
        raise MetricError(f"{len(edited_files)} edited images but {len(source_files)} source images; give pairs")
    if not edited_files:
        raise MetricError("no image pairs given")
    if discriminator is None and components is None:
        raise MetricError("nothing to score: give the release's discriminator (IFG) and/or the edited components "
                          "(MSE_irr)")
    if discriminator is not None:
        check_release_discriminator(discriminator)
        dev = next(discriminator.parameters()).device
    if components is not None:
        component_indices(components)  # unknown names fail before any image is read
    d_edit, d_src, irr = [], [], []
    for e, s in zip(edited_files, source_files):
        src, edit = read_release_image(s, RELEASE_SIZE), read_release_image(e, RELEASE_SIZE)
        if discriminator is not None:
            d_src.append(float(discriminator(src.to(dev)).reshape(-1)[0]))
            d_edit.append(float(discriminator(edit.to(dev)).reshape(-1)[0]))
        if components is not None:
            irr.append(mse_irr(src, edit, components, size=None))
    edited = torch.tensor(d_edit, dtype=torch.float64) if discriminator is not None else None
    source = torch.tensor(d_src, dtype=torch.float64) if discriminator is not None else None
    gap = float(edited.mean() - source.mean()) if edited is not None else None
    return ReleaseScores(gap, edited, source, sum(irr) / len(irr) if irr else None)


def score_ifg_release(discriminator: torch.nn.Module, edited_files: Sequence[PathLike],
                      source_files: Sequence[PathLike]) -> ReleaseScores:
    """The paper's IFG: ``mean D(edited) - mean D(source)`` under the release's discriminator
    (:func:`load_release_discriminator`), images read from files and scored one at a time as the
    release. Returns :class:`ReleaseScores` (``.ifg``, per-pair ``.edited`` / ``.source``)."""
    check_release_discriminator(discriminator)
    return release_scores(edited_files, source_files, discriminator)


def release_pairs(edited_dir: PathLike, source_dir: PathLike) -> tuple[list[Path], list[Path]]:
    """The release's pairing: every image of ``edited_dir`` (sorted by name) with the file of the
    same name in ``source_dir``. MetricError when one has none."""
    edited = list_images(edited_dir)
    if not edited:
        raise MetricError(f"no image in {edited_dir}")
    if not Path(source_dir).is_dir():
        raise MetricError(f"source folder not found: {source_dir}")
    source = [Path(source_dir) / p.name for p in edited]
    missing = [p.name for p in source if not p.is_file()]
    if missing:
        raise MetricError(f"{len(missing)} of the {len(edited)} images of {edited_dir} have no file of the same name "
                          f"in {source_dir} (first: {missing[0]}); the release pairs edits and sources by file name")
    return edited, source
