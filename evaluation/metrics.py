"""Evaluation metrics of IA-FaceS, callable from Python, with the official conventions.

Images are float tensors ``[B, 3, H, W]`` in [-1, 1] (what the networks produce and
``utils.image_io.load_image`` returns). Every metric is listed in the explicit registry
``METRICS`` (name -> function).

=========  ==============================================================================
mse        mean squared error on [-1, 1]
psnr       ``10 * log10(1 / MSE)`` on [0, 1] images, each **min-max rescaled per image** (over all
           its channels) first, as the release (``minmax=False``: the plain ``(x + 1) / 2``); the
           MSE of the batch given (the official per-batch convention; ``reduction="none"`` gives
           one value per image)
ssim       ``pytorch_ssim`` as the release: min-max rescaled [0, 1] images, Gaussian window 11,
           sigma 1.5, per-channel convolution with **zero padding** 5, C1 = 0.01^2, C2 = 0.03^2, the
           mean of the whole SSIM map (borders included); ``variant="skimage"``: scikit-image's
           SSIM (borders cropped), the project's earlier convention
lpips      LPIPS (VGG, "net-lin" v0.1) on [-1, 1]; mean over the images
fid        Frechet distance between the feature statistics of two image sets (pytorch-fid's
           Inception pool3 features by default; see ``evaluation.fid``)
mse_irr    MSE between the source reconstruction and the edited image with the edited
           components' boxes zeroed in both (the mean runs over all pixels); images larger than
           256 px are first resized to 256 with OpenCV INTER_LINEAR, as the release
ifg        mean ``D(edited) - D(source reconstruction)`` under a discriminator, images scored
           one at a time (a StyleGAN2 D's minibatch-stddev layer makes scores batch-dependent);
           the paper's IFG (the release's discriminator on image files) is
           ``evaluation.release_ifg.score_ifg_release``
arc_dis    mean ArcFace distance ``1 - cos`` between source reconstruction and edit, over the
           faces a detector finds (see ``evaluation.arcface``)
attr_acc   share of edited images an attribute classifier labels with the target attribute
=========  ==============================================================================

Averaging over a data set (``evaluation.compare``): every per-batch value is weighted by its batch
size, ``sum(value_b * n_b) / N`` (batch 8 as the release's scripts).
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from model.boxes import ComponentSpec, boxes_at, component_indices
from model.lpips import build_lpips
from utils.errors import ConfigError, MetricError
from utils.image_io import to_unit

from .fid import (_frechet_own, activation_statistics, frechet_distance,  # noqa: F401 (metrics API)
                  inception_features, matrix_sqrt, set_features)

PSNR_MAX_DB = 100.0  # PSNR of identical images (MSE clamped to 1e-10)
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


# ------------------------------------------------------------------------------------------ helpers
def load_torchscript(path, device="cpu", trust_code: bool = False) -> Optional[torch.nn.Module]:
    """The TorchScript module in ``path`` (eval mode) for user-supplied metric networks, or None
    when the file is not a TorchScript archive. Loading TorchScript runs code from the file, so a
    TorchScript file is refused with a MetricError unless ``trust_code`` (``--trust_code``)."""
    from model.official_checkpoint import is_torchscript_file

    if not is_torchscript_file(path):
        return None
    if not trust_code:
        raise MetricError(f"{path} is a TorchScript file: loading it runs code stored in it; give a weights-only "
                          "state dict instead, or pass --trust_code if you trust its source")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still supported
            return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError) as e:
        raise MetricError(f"cannot load TorchScript file {path}: {str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__}") from None


def build_bounded(factory: Callable[[], torch.nn.Module], state: dict, where: str) -> torch.nn.Module:
    """``factory()`` after checking on the ``meta`` device (no memory) that the network it builds
    is no larger than the state dict ``state`` it will load: shapes read from an untrusted file
    cannot allocate more than the file holds."""
    with torch.device("meta"):
        meta = factory()
    need = sum(t.numel() for t in meta.state_dict().values())
    have = sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))
    if need > 2 * have + (1 << 20):
        raise MetricError(f"{where}: the shapes describe a network of {need} values but the file holds {have}; "
                          "the file is damaged or crafted")
    return factory()


def _pair(a: Tensor, b: Tensor, what: str = "images") -> tuple[Tensor, Tensor]:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.ndim == 3:
        a = a[None]
    if b.ndim == 3:
        b = b[None]
    if a.ndim != 4 or a.shape != b.shape:
        raise MetricError(f"{what} must be two [B, C, H, W] batches of equal shape, got {list(a.shape)} and "
                          f"{list(b.shape)}")
    if a.shape[0] == 0:
        raise MetricError(f"no {what} given")
    return a.detach().double().cpu(), b.detach().double().cpu()


def _reduce(values: Tensor, reduction: str):
    if reduction == "none":
        return values
    if reduction == "mean":
        return float(values.mean())
    raise MetricError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def metric_boxes(size: int) -> tuple[tuple[int, int, int, int], ...]:
    """Component boxes ``[x0, y0, x1, y1]`` (exclusive ends) used by the metrics at ``size`` px.

    At 256 px these are the official metric regions (the 256 row of ``boxes_at``); other sizes
    use the same rounding rule at that size, i.e. the regions scaled."""
    if int(size) < 8:
        raise MetricError(f"images must be at least 8 px for component boxes, got {size}")
    return boxes_at(int(size))


def box_mask(size: int, components: ComponentSpec, inside: bool = True) -> Tensor:
    """float [1, 1, size, size]: 1 inside the union of the components' metric boxes (``inside``)
    or 1 outside it (``inside=False``)."""
    m = torch.zeros(1, 1, size, size, dtype=torch.float64)
    boxes = metric_boxes(size)
    for i in component_indices(components):
        x0, y0, x1, y1 = boxes[i]
        m[..., y0:y1, x0:x1] = 1.0
    return m if inside else 1.0 - m


# ----------------------------------------------------------------------------------- pixel metrics
def mse(a: Tensor, b: Tensor, reduction: str = "mean"):
    """Mean squared error on [-1, 1]: a float, or per image [B] with ``reduction="none"``."""
    a, b = _pair(a, b)
    return _reduce((a - b).square().flatten(1).mean(1), reduction)


def minmax_unit(x: Tensor) -> Tensor:
    """[-1, 1] images [B, C, H, W] -> [0, 1], then min-max rescaled per image over all its
    channels and pixels, as the official metric code: ``(u - min) / (max - min)``. A constant image
    (``max == min``; the release divides by zero there) becomes all zeros."""
    u = (x + 1) / 2
    flat = u.flatten(1)
    lo = flat.min(1).values.view(-1, 1, 1, 1)
    span = (flat.max(1).values.view(-1, 1, 1, 1) - lo)
    return torch.where(span > 0, (u - lo) / span.clamp(min=1e-12), torch.zeros_like(u))


def _unit(x: Tensor, minmax: bool) -> Tensor:
    return minmax_unit(x) if minmax else to_unit(x)


def psnr(a: Tensor, b: Tensor, reduction: str = "batch", minmax: bool = True):
    """``10 * log10(1 / MSE)`` on [0, 1] images.

    ``minmax`` (default, official): each image is min-max rescaled to [0, 1] first
    (:func:`minmax_unit`); ``False``: the plain ``(x + 1) / 2`` mapping (clamped).
    ``reduction="batch"`` (default, official): one value from the MSE of the whole batch given;
    ``"mean"``: mean of the per-image values; ``"none"``: per image [B]. The MSE is clamped to
    1e-10, so identical images give ``PSNR_MAX_DB`` (100 dB) rather than infinity."""
    a, b = _pair(a, b)
    per = (_unit(a, minmax) - _unit(b, minmax)).square().flatten(1).mean(1)
    db = lambda m: 10.0 * torch.log10(1.0 / m.clamp(min=10 ** (-PSNR_MAX_DB / 10)))  # noqa: E731
    if reduction == "batch":
        return float(db(per.mean()))
    return _reduce(db(per), reduction)


SSIM_WINDOW = 11
SSIM_VARIANTS = ("pytorch_ssim", "skimage")


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    """pytorch_ssim's 2-D window: the outer product of the normalised 1-D Gaussian
    ``exp(-(x - size // 2)^2 / (2 sigma^2))``, x = 0..size-1 (float64)."""
    x = torch.arange(size, dtype=torch.float64)
    g = torch.exp(-(x - size // 2) ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_map(a: Tensor, b: Tensor, size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    """The SSIM map of ``pytorch_ssim`` for images [B, C, H, W] (any range, float64): each
    channel convolved with the Gaussian window with zero padding ``size // 2`` (so the map has
    the image's size, borders included), C1 = 0.01^2, C2 = 0.03^2."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    c = a.shape[1]
    w = gaussian_window(size, sigma).expand(c, 1, size, size).contiguous()
    conv = lambda t: F.conv2d(t, w, padding=size // 2, groups=c)  # noqa: E731
    mu1, mu2 = conv(a), conv(b)
    s11 = conv(a * a) - mu1 * mu1
    s22 = conv(b * b) - mu2 * mu2
    s12 = conv(a * b) - mu1 * mu2
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    return ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2))


def ssim(a: Tensor, b: Tensor, reduction: str = "mean", variant: str = "pytorch_ssim", minmax: bool = True):
    """SSIM on [0, 1] images: mean over images, or per image [B] with ``reduction="none"``.

    ``variant="pytorch_ssim"`` (default, official): :func:`ssim_map` averaged over the whole map,
    borders included, on min-max rescaled images (``minmax``). ``variant="skimage"``:
    scikit-image's ``structural_similarity`` (Gaussian weights, sigma 1.5, population covariances,
    ``data_range=1``, borders cropped, channels averaged), the project's earlier convention."""
    a, b = _pair(a, b)
    if variant not in SSIM_VARIANTS:
        raise MetricError(f"unknown SSIM variant {variant!r}; choose from {', '.join(SSIM_VARIANTS)}")
    ua, ub = _unit(a, minmax), _unit(b, minmax)
    if variant == "pytorch_ssim":
        vals = torch.cat([ssim_map(ua[i:i + 16], ub[i:i + 16]).flatten(1).mean(1)
                          for i in range(0, ua.shape[0], 16)])
        return _reduce(vals, reduction)
    from skimage.metrics import structural_similarity  # heavy import, needed only for this variant

    if min(a.shape[-2:]) < 11:
        raise MetricError(f"SSIM needs images of at least 11x11 px, got {a.shape[-1]}x{a.shape[-2]}")
    ua, ub = ua.permute(0, 2, 3, 1).numpy(), ub.permute(0, 2, 3, 1).numpy()
    vals = [structural_similarity(x, y, gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False,
                                  data_range=1.0, channel_axis=-1) for x, y in zip(ua, ub)]
    return _reduce(torch.tensor(vals, dtype=torch.float64), reduction)


_LPIPS_CACHE: dict = {}


def lpips_model(backbone: str = "pretrained", vgg_weights: Optional[str] = None, device="cpu"):
    """The LPIPS(VGG) network (cached per backbone/weights/device); never downloads (see
    ``model.lpips.build_lpips`` for where the VGG16 weights go)."""
    key = (backbone, str(vgg_weights), str(device))
    if key not in _LPIPS_CACHE:
        try:
            _LPIPS_CACHE[key] = build_lpips(backbone, vgg_weights, hint="(or pass --lpips_vgg PATH)").to(device)
        except ConfigError as e:
            raise MetricError(str(e)) from None
    return _LPIPS_CACHE[key]


@torch.no_grad()
def lpips_distance(a: Tensor, b: Tensor, model: Optional[torch.nn.Module] = None, reduction: str = "mean",
                   batch_size: int = 16, backbone: str = "pretrained", vgg_weights: Optional[str] = None):
    """LPIPS (VGG) between images in [-1, 1]; mean over images, or per image [B]."""
    a, b = _pair(a, b)
    model = model if model is not None else lpips_model(backbone, vgg_weights)
    dev = next(model.parameters()).device
    out = []
    for i in range(0, a.shape[0], batch_size):
        d = model(a[i:i + batch_size].float().to(dev), b[i:i + batch_size].float().to(dev))
        out.append(d.flatten().double().cpu())
    return _reduce(torch.cat(out), reduction)


# --------------------------------------------------------------------------------------------- FID
def fid(real: Tensor, fake: Tensor, features: Optional[Callable[[Tensor], Tensor]] = None,
        batch_size: int = 50, inception: Optional[str] = None, device="cpu") -> float:
    """FID between two image sets [N, 3, H, W] in [-1, 1] (sizes may differ between the sets).

    ``features(x)`` maps images in [0, 1] to [B, d] (pytorch-fid's convention); default: the FID
    Inception network (pool3, 2048-d) from ``inception`` or torch hub's checkpoint folder."""
    extractor = features if features is not None else inception_features(inception, device=device)
    fr = set_features(real, extractor, batch_size)
    ff = set_features(fake, extractor, batch_size)
    return frechet_distance(*activation_statistics(fr), *activation_statistics(ff))


# ---------------------------------------------------------------------------------------- editing
#: MSE_irr's image size: the release resizes both images to 256 px before comparing them.
MSE_IRR_SIZE = 256


def mse_irr(source: Tensor, edited: Tensor, components: ComponentSpec, reduction: str = "mean",
            size: Optional[int] = MSE_IRR_SIZE):
    """MSE on [-1, 1] between the source reconstruction and the edited image [B, 3, S, S], with the
    edited components' metric boxes (:func:`metric_boxes`) zeroed in both; the mean runs over all
    pixels (boxes included, as zeros).

    ``size`` (default 256, the release): images larger than ``size`` are first resized to it with
    OpenCV INTER_LINEAR (as floats; the release resizes the uint8 files) and the boxes are those at
    ``size``; smaller images keep their size (the release has no models below 256 px). ``None``:
    every image at its full size, with the boxes at that size."""
    a, b = _pair(source, edited)
    if a.shape[-1] != a.shape[-2]:
        raise MetricError(f"MSE_irr needs square aligned faces, got {a.shape[-1]}x{a.shape[-2]}")
    if size is not None and a.shape[-1] > int(size):
        a, b = _resize(a.float(), int(size)).double(), _resize(b.float(), int(size)).double()
    keep = box_mask(a.shape[-1], components, inside=False)
    return _reduce(((a - b) * keep).square().flatten(1).mean(1), reduction)


def masked_mse(a: Tensor, b: Tensor, mask: Tensor, reduction: str = "mean"):
    """MSE over the pixels where ``mask`` [1 or B, 1, H, W] is 1 (mean over those pixels and the
    channels), per image or averaged."""
    a, b = _pair(a, b)
    m = torch.as_tensor(mask, dtype=torch.float64).expand(a.shape[0], 1, *a.shape[-2:])
    n = m.flatten(1).sum(1).clamp(min=1) * a.shape[1]
    return _reduce(((a - b).square() * m).flatten(1).sum(1) / n, reduction)


def _resize(x: Tensor, size: int) -> Tensor:
    """Images [B, 3, H, W] in [-1, 1] -> ``size`` px with OpenCV's INTER_LINEAR (the release's
    resize; float images, so no uint8 rounding)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    import cv2
    arr = x.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    out = np.stack([cv2.resize(np.ascontiguousarray(a), (size, size), interpolation=cv2.INTER_LINEAR)
                    for a in arr])
    if out.ndim == 3:  # a single channel loses its axis in cv2
        out = out[..., None]
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.dtype)


@torch.no_grad()
def discriminator_scores(discriminator: torch.nn.Module, images: Tensor, batch_size: int = 1) -> Tensor:
    """D(x) for images in [-1, 1] (resized to the discriminator's size when it declares one) -> [B].

    ``batch_size`` 1 (default) scores the images one at a time, as the release: a StyleGAN2
    discriminator's minibatch-stddev layer makes a score depend on the other images of its batch."""
    images = torch.as_tensor(images)
    if images.ndim == 3:
        images = images[None]
    size = getattr(getattr(discriminator, "cfg", None), "size", None) or getattr(discriminator, "size", None)
    dev = next(iter(discriminator.parameters()), torch.zeros(())).device
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size].float()
        if size:
            x = _resize(x, int(size))
        out.append(discriminator(x.to(dev)).reshape(x.shape[0], -1)[:, 0].double().cpu())
    return torch.cat(out)


def ifg(discriminator: torch.nn.Module, edited: Tensor, source: Tensor, batch_size: int = 1) -> float:
    """Image fidelity gap: ``mean D(edited) - mean D(source reconstruction)`` (negative: the edits
    look less real to D than the reconstructions); images in memory, scored one at a time by
    default. Any discriminator: label the value with ``evaluation.discriminators.ifg_label(D)``;
    the paper's IFG is ``evaluation.release_ifg.score_ifg_release`` (the release's D, image files)."""
    e, s = _pair(edited, source)
    return float(discriminator_scores(discriminator, e, batch_size).mean()
                 - discriminator_scores(discriminator, s, batch_size).mean())


def arc_dis(embedder: Callable[[Tensor], Tensor], source: Tensor, edited: Tensor,
            detector: Optional[Callable[[Tensor], Tensor]] = None, batch_size: int = 16) -> float:
    """Mean ArcFace (identity) distance ``1 - cos(e(source), e(edited))`` over the image pairs in
    which ``detector`` (images -> bool [B]) finds a face in both; every pair counts without a
    detector. ``embedder`` maps images in [-1, 1] to embeddings [B, d] (e.g.
    :class:`evaluation.arcface.ArcFaceEmbedder`). NaN when no face is found."""
    s, e = _pair(source, edited)
    found = torch.ones(s.shape[0], dtype=torch.bool)
    if detector is not None:
        found = torch.as_tensor(detector(s.float())).bool().cpu() & torch.as_tensor(detector(e.float())).bool().cpu()
    if not bool(found.any()):
        return float("nan")
    s, e = s[found], e[found]
    d = []
    with torch.no_grad():
        for i in range(0, s.shape[0], batch_size):
            fs = torch.as_tensor(embedder(s[i:i + batch_size].float())).double().cpu()
            fe = torch.as_tensor(embedder(e[i:i + batch_size].float())).double().cpu()
            d.append(1.0 - F.cosine_similarity(fs, fe, dim=1))
    return float(torch.cat(d).mean())


def attribute_accuracy(classifier, edited: Tensor, attribute: str, target: bool = True) -> float:
    """Share of ``edited`` images that ``classifier`` labels with ``attribute == target``.

    ``classifier``: an :class:`evaluation.attr_classifier.AttributeClassifier` (or any object with
    ``attribute_names`` and ``predict(images) -> bool [B, n_attr]``)."""
    names = list(getattr(classifier, "attribute_names", ()))
    lookup = {n.lower(): i for i, n in enumerate(names)}
    if attribute.lower() not in lookup:
        raise MetricError(f"the classifier knows no attribute '{attribute}'; it has {', '.join(names)}")
    labels = torch.as_tensor(classifier.predict(edited)).bool()
    return float((labels[:, lookup[attribute.lower()]] == bool(target)).double().mean())


#: Explicit metric registry: name -> function (see the module docstring for the conventions).
METRICS: dict[str, Callable] = {
    "mse": mse,
    "psnr": psnr,
    "ssim": ssim,
    "lpips": lpips_distance,
    "fid": fid,
    "mse_irr": mse_irr,
    "ifg": ifg,
    "arc_dis": arc_dis,
    "attr_acc": attribute_accuracy,
}

__all__ = ["METRICS", "MetricError", "activation_statistics", "arc_dis", "attribute_accuracy", "box_mask",
           "component_indices", "discriminator_scores", "fid", "frechet_distance", "ifg", "lpips_distance",
           "lpips_model", "masked_mse", "matrix_sqrt", "metric_boxes", "minmax_unit", "mse", "mse_irr", "MSE_IRR_SIZE",
           "psnr", "ssim", "ssim_map", "gaussian_window", "to_unit"]
