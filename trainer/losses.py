"""Losses of the official procedure and the LPIPS(VGG) perceptual loss with offline loading."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from model.config import ConfigError

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's file name for the ImageNet VGG16 weights


def d_logistic_loss(real_pred: Tensor, fake_pred: Tensor) -> Tensor:
    """``softplus(-D(x)).mean() + softplus(D(fake)).mean()``."""
    return F.softplus(-real_pred).mean() + F.softplus(fake_pred).mean()


def g_nonsaturating_loss(fake_pred: Tensor) -> Tensor:
    """``softplus(-D(fake)).mean()``."""
    return F.softplus(-fake_pred).mean()


def r1_penalty(real_pred: Tensor, real: Tensor) -> Tensor:
    """``mean_b sum (dD(x)/dx)^2`` (differentiable, for lazy R1)."""
    (grad,) = torch.autograd.grad(real_pred.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def default_vgg_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def build_lpips(backbone: str = "pretrained", vgg_weights: Optional[str] = None) -> nn.Module:
    """``lpips.LPIPS(net='vgg')`` (VGG "net-lin" v0.1, inputs in [-1, 1]) in eval mode, frozen.

    The linear calibration layers ship with the ``lpips`` package; the VGG16 backbone is read
    from ``vgg_weights`` or torchvision's cache, never downloaded. ``backbone="random"`` uses an
    untrained VGG (for tests only)."""
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if backbone == "random":
            model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
        else:
            path = Path(vgg_weights) if vgg_weights else default_vgg_path()
            if not path.is_file():
                raise ConfigError(
                    f"LPIPS needs the ImageNet VGG16 weights, not found at {path}: copy torchvision's "
                    f"'{VGG16_FILE}' into {default_vgg_path().parent} (or set loss.lpips_vgg_weights to "
                    "its path), or set loss.p_loss_weight to 0 to train without the perceptual term")
            model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
            _load_vgg_backbone(model, path)
    model.eval().requires_grad_(False)
    return model


def _load_vgg_backbone(model: nn.Module, path: Path) -> None:
    """Copy a torchvision VGG16 state_dict (``features.{i}.*``) into LPIPS's slices."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable weights file
        raise ConfigError(f"cannot read VGG16 weights {path}: {e.__class__.__name__}; "
                          "provide torchvision's vgg16 state_dict file") from None
    target = model.net.state_dict()
    mapped = {}
    for key in target:  # e.g. slice2.5.weight -> features.5.weight
        _, idx, name = key.split(".")
        src = f"features.{idx}.{name}"
        if src not in state or state[src].shape != target[key].shape:
            raise ConfigError(f"{path} is not a torchvision VGG16 state_dict (missing or mis-shaped {src})")
        mapped[key] = state[src]
    model.net.load_state_dict(mapped)


class PerceptualLoss(nn.Module):
    """Mean LPIPS distance between two batches in [-1, 1] -> scalar."""

    def __init__(self, backbone: str = "pretrained", vgg_weights: Optional[str] = None):
        super().__init__()
        self.lpips = build_lpips(backbone, vgg_weights)

    def train(self, mode: bool = True):  # LPIPS stays in eval mode (its dropout must not fire)
        super().train(False)
        return self

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.lpips(a, b).mean()
