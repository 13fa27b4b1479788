"""FID plumbing around pytorch-fid: its ``InceptionV3`` (pool3 features of the TF-ported FID
Inception) loaded from a local file only, and feature extraction for image sets.

pytorch-fid downloads ``pt_inception-2015-12-05-6726825d.pth`` on first use; this project never
downloads. The weights are looked up at ``--inception PATH`` or in torch hub's checkpoint folder
(``<torch hub dir>/checkpoints/``, where pytorch-fid itself would cache them), otherwise the
metric stops with a message naming the file and the folder.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from utils.errors import MetricError
from utils.image_io import to_unit

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
    import pytorch_fid.inception as pi  # heavy import, needed only for FID

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


# ------------------------------------------------------------------------------ Frechet distance
def matrix_sqrt(m: np.ndarray) -> np.ndarray:
    """Principal square root of a square matrix (``scipy.linalg.sqrtm``); a tiny imaginary part
    from round-off is dropped, a real one raises."""
    from scipy import linalg  # heavy import, needed only for FID

    m = np.atleast_2d(np.asarray(m, dtype=np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = linalg.sqrtm(m)
    if isinstance(root, tuple):  # older SciPy with disp=False semantics
        root = root[0]
    if np.iscomplexobj(root):
        if not np.allclose(root.imag, 0, atol=1e-3 * max(1.0, np.abs(root).max())):
            raise ValueError(f"matrix square root has an imaginary part of {np.abs(root.imag).max():.3g}")
        root = root.real
    return root


def _frechet_own(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    diff = mu1 - mu2
    covmean = None
    try:
        covmean = matrix_sqrt(sigma1 @ sigma2)
    except ValueError:
        pass
    if covmean is None or not np.isfinite(covmean).all():
        off = np.eye(sigma1.shape[0]) * eps
        covmean = matrix_sqrt((sigma1 + off) @ (sigma2 + off))
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))`` with pytorch-fid's
    ``calculate_frechet_distance`` (the reference implementation); the project's own
    implementation of the same formula is used only if that function is unusable with the
    installed SciPy."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise MetricError(f"FID statistics do not match: means {mu1.shape} / {mu2.shape}, covariances "
                          f"{sigma1.shape} / {sigma2.shape}")
    try:
        from pytorch_fid.fid_score import calculate_frechet_distance  # heavy import, needed only for FID
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
    except TypeError:  # e.g. a SciPy without sqrtm(disp=...)
        return _frechet_own(mu1, sigma1, mu2, sigma2)


def activation_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean [d], covariance [d, d]) of features [N, d], as pytorch-fid (``np.cov``, rowvar=False)."""
    f = np.asarray(torch.as_tensor(features).double().cpu().numpy() if isinstance(features, Tensor) else features,
                   dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise MetricError(f"FID needs at least 2 feature vectors [N, d], got shape {list(f.shape)}")
    return f.mean(0), np.cov(f, rowvar=False)



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
        return activation_statistics(np.concatenate(self.rows) if self.rows else np.zeros((0, 1)))
