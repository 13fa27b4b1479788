"""The release's losses: L1 + LPIPS(VGG) + non-saturating adversarial for E and G, logistic loss
with lazy R1 for D (network of the perceptual loss: ``model.lpips``). ``IAFacesLoss`` is the
generator-side objective of one training step; the project's counterfactual loss extends it
(``trainer.counterfactual``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from model.lpips import build_lpips
from utils.errors import ConfigError

from utils.config import check_range


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


#: Loss keys that only the discriminator's step reads.
D_KEYS = ("d_loss_weight", "d_reg_every", "r1")


@dataclass
class LossConfig:
    """The release's loss weights. ``lpips_backbone``: ``pretrained`` (torchvision VGG16 weights,
    a local file: ``lpips_vgg_weights`` or the torch hub cache) or ``random`` (tests only)."""
    g_loss_weight: float = 1.0
    p_loss_weight: float = 1.0
    d_loss_weight: float = 1.0
    l1_loss_weight: float = 1.0
    d_reg_every: int = 16
    r1: float = 10.0
    lpips_backbone: str = "pretrained"
    lpips_vgg_weights: Optional[str] = None

    def __post_init__(self):
        if self.lpips_backbone not in ("pretrained", "random"):
            raise ConfigError("loss.lpips_backbone must be 'pretrained' or 'random'")
        check_range("loss.d_reg_every", self.d_reg_every, 1)
        for name in ("g_loss_weight", "p_loss_weight", "d_loss_weight", "l1_loss_weight", "r1"):
            check_range(f"loss.{name}", getattr(self, name), 0)

    @property
    def adversarial(self) -> bool:
        """Whether the loss has an adversarial term (and so a discriminator to build and train)."""
        return self.g_loss_weight > 0

    def inert_keys(self) -> dict[str, str]:
        """Keys without effect given the others -> why (a typed config that sets one is refused)."""
        inert = {}
        if not self.adversarial:
            inert.update({k: "only the discriminator's step reads it, and g_loss_weight is 0 (no "
                             "discriminator is built)" for k in D_KEYS})
        if self.p_loss_weight == 0:
            inert.update({k: "it configures LPIPS, and p_loss_weight is 0" for k in
                          ("lpips_backbone", "lpips_vgg_weights")})
        return inert

    def check_with(self, cfg) -> None:
        """Checks against the rest of the training config (``trainer.config.TrainConfig``)."""


class IAFacesLoss:
    """The release's generator objective: ``l1 * L1 + g * non-saturating(D(fake)) + p * LPIPS``.

    ``generator_loss`` runs the E/G forward pass of a training step; subclasses extend it through
    ``uses_discriminator`` (when the adversarial term is on), ``decode`` (the forward pass) and
    ``extra_terms`` (terms added after the adversarial one)."""

    config_class = LossConfig

    def __init__(self, cfg: LossConfig, trainer):
        self.cfg = cfg
        self.trainer = trainer
        self.perceptual = (PerceptualLoss(cfg.lpips_backbone, cfg.lpips_vgg_weights).to(trainer.device)
                           if cfg.p_loss_weight > 0 else None)

    def uses_discriminator(self, iteration: int) -> bool:
        return self.cfg.adversarial

    def decode(self, x: Tensor, mask: Tensor, iteration: int) -> dict:
        """The forward pass (under autocast): ``{"fake": reconstruction of x, float32}``."""
        t = self.trainer
        return {"fake": t.G_train(*t.E_train(x, mask), noise_mode=t.noise_mode).float()}

    def extra_terms(self, loss: Tensor, x: Tensor, out: dict, logs: dict) -> Tensor:
        return loss

    def generator_loss(self, x: Tensor, mask: Tensor, iteration: int) -> tuple[Tensor, dict]:
        """(scalar loss, logs) for E and G on the batch x [B, 3, S, S] with hole masks."""
        L, t = self.cfg, self.trainer
        use_gan = self.uses_discriminator(iteration)
        with t.autocast():
            out = self.decode(x, mask, iteration)
            adv = g_nonsaturating_loss(t.D(out["fake"]).float()) if use_gan else out["fake"].new_zeros(())
        fake = out["fake"]
        l1 = (fake - x).abs().mean()
        loss = L.l1_loss_weight * l1 + L.g_loss_weight * adv
        logs = {"l1": l1.item(), "g_adv": adv.item()}
        loss = self.extra_terms(loss, x, out, logs)
        if self.perceptual is not None:
            p = self.perceptual(fake, x)
            loss = loss + L.p_loss_weight * p
            logs["lpips"] = p.item()
        return loss, logs
