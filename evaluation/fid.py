"""FID plumbing around pytorch-fid: its ``InceptionV3`` (pool3 features of the TF-ported FID
Inception) loaded from a local file only, and feature extraction for image sets.

pytorch-fid downloads ``pt_inception-2015-12-05-6726825d.pth`` on first use; this project never
downloads. The weights are looked up at ``--inception PATH`` or in torch hub's checkpoint folder
(``<torch hub dir>/checkpoints/``, where pytorch-fid itself would cache them), otherwise the
metric stops with a message naming the file and the folder.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from .metrics import MetricError, to_unit

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
_PATCH_LOCK = threading.Lock()


def default_inception_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def find_inception_weights(path: Optional[Union[str, Path]] = None) -> Path:
    """The FID Inception weights file: ``path`` if given, else torch hub's checkpoint folder."""
    p = Path(path) if path else default_inception_path()
    if not p.is_file():
        where = f"not found at {p}" if path else f"not found in {p.parent}"
        raise MetricError(
            f"FID needs pytorch-fid's Inception weights '{INCEPTION_FILE}' ({where}); nothing is downloaded: "
            f"copy the file into {default_inception_path().parent} or pass --inception PATH")
    return p


def load_inception(path: Optional[Union[str, Path]] = None, dims: int = 2048, device="cpu") -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3`` (FID variant) returning the block for ``dims`` features,
    weights read from a local file (pytorch-fid's downloader is bypassed for this call)."""
    import pytorch_fid.inception as pi

    if dims not in pi.InceptionV3.BLOCK_INDEX_BY_DIM:
        raise MetricError(f"FID feature dims must be one of {sorted(pi.InceptionV3.BLOCK_INDEX_BY_DIM)}, got {dims}")
    weights = find_inception_weights(path)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unreadable or foreign file
        raise MetricError(f"cannot read Inception weights {weights}: {e.__class__.__name__}") from None

    def local_state(*_args, **_kwargs):
        return state

    with _PATCH_LOCK:
        original = pi.load_state_dict_from_url
        pi.load_state_dict_from_url = local_state
        try:
            model = pi.InceptionV3([pi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
        except RuntimeError as e:
            raise MetricError(f"{weights} does not hold the FID Inception weights "
                              f"({str(e).splitlines()[0]})") from None
        finally:
            pi.load_state_dict_from_url = original
    return model.to(device).eval()


class InceptionFeatures:
    """Callable: images in [0, 1] [B, 3, H, W] -> pool features [B, d] (pytorch-fid resizes to 299
    and normalizes inside the network)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        pred = self.model(x.float().to(self.device))[0]
        if pred.shape[-1] != 1 or pred.shape[-2] != 1:
            pred = torch.nn.functional.adaptive_avg_pool2d(pred, (1, 1))
        return pred.flatten(1).cpu()


def inception_features(path: Optional[Union[str, Path]] = None, dims: int = 2048, device="cpu") -> InceptionFeatures:
    return InceptionFeatures(load_inception(path, dims, device))


@torch.no_grad()
def set_features(images: Tensor, features: Callable[[Tensor], Tensor], batch_size: int = 50) -> np.ndarray:
    """Features [N, d] of images [N, 3, H, W] in [-1, 1] (passed to ``features`` in [0, 1])."""
    images = torch.as_tensor(images)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 2:
        raise MetricError(f"FID needs at least 2 images [N, 3, H, W], got {list(images.shape)}")
    out = [torch.as_tensor(features(to_unit(images[i:i + batch_size].float()))).double().reshape(
        min(batch_size, images.shape[0] - i), -1) for i in range(0, images.shape[0], batch_size)]
    return torch.cat(out).numpy()


class FeatureAccumulator:
    """Streams batches through ``features`` and keeps the feature rows (for folder FID)."""

    def __init__(self, features: Callable[[Tensor], Tensor]):
        self.features, self.rows = features, []

    @torch.no_grad()
    def add(self, images: Tensor) -> None:
        f = torch.as_tensor(self.features(to_unit(images.float()))).double()
        self.rows.append(f.reshape(images.shape[0], -1).cpu().numpy())

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        from .metrics import activation_statistics
        return activation_statistics(np.concatenate(self.rows) if self.rows else np.zeros((0, 1)))
