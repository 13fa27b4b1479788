"""Losses of the official procedure and the LPIPS(VGG) perceptual loss (network: ``model.lpips``)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from model.lpips import build_lpips


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
