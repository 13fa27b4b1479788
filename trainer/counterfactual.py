"""The project's counterfactual loss (docs/study.md): the release's loss plus terms that only a data
set with rendered counterfactual faces can supply, and two schedule/weighting terms of the study.

- ``box_l1_weight``: L1 inside the component boxes (mean over the boxes' pixels), so that the few
  pixels a component covers weigh enough to make the decoder read its embedding.
- ``swap_weight`` (SynthFaces only): per iteration ``swap_pairs`` (target, reference) training
  faces; the target is decoded with some component embeddings taken from the reference (one of
  ``swap_components`` per pair: a component, or ``eyes`` for both) and compared (L1) with the
  rendered counterfactual, the target with those components' factors from the reference.
- ``swap_box_weight``: the same L1 inside the swapped boxes only (the whole-image mean gives the
  box, where the swap shows, a few per cent of the swap loss).
- ``gan_start``: the adversarial term (and the discriminator's step) start at this iteration.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from data_loader.registry import synthfaces_setting
from data_loader.synthfaces.dataset import split_ranges, transfer_pairs
from model.boxes import COMPONENTS, ComponentError, boxes_at, component_box_mask, component_indices
from utils.config import check_range
from utils.errors import ConfigError

from .losses import IAFacesLoss, LossConfig

SWAP_KEYS = ("swap_pairs", "swap_components", "swap_box_weight")


@dataclass
class CounterfactualLossConfig(LossConfig):
    gan_start: int = 0
    box_l1_weight: float = 0.0
    swap_weight: float = 0.0
    swap_pairs: int = 8
    swap_components: list = field(default_factory=lambda: ["l_eye", "r_eye", "nose", "mouth"])
    swap_box_weight: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        check_range("loss.gan_start", self.gan_start, 0)
        for name in ("box_l1_weight", "swap_weight", "swap_box_weight"):
            check_range(f"loss.{name}", getattr(self, name), 0)
        if self.swap_box_weight > 0 and self.swap_weight == 0:
            raise ConfigError("loss.swap_box_weight needs the swap pairs: set loss.swap_weight > 0 too (or "
                              "swap_box_weight 0)")
        check_range("loss.swap_pairs", self.swap_pairs, 1, 1024)
        if not self.swap_components:
            raise ConfigError("loss.swap_components must name at least one component selection")
        for spec in self.swap_components:
            if not isinstance(spec, str):
                raise ConfigError(f"loss.swap_components entries must be strings, got {spec!r}")
            try:
                component_indices(spec)
            except ComponentError as e:
                raise ConfigError(f"loss.swap_components: {e}") from None

    def inert_keys(self) -> dict[str, str]:
        inert = super().inert_keys()
        if not self.adversarial:
            inert["gan_start"] = "it delays the adversarial term, and g_loss_weight is 0"
        if self.swap_weight == 0:
            inert.update({k: "it shapes the swap pairs, and swap_weight is 0" for k in SWAP_KEYS
                          if k != "swap_box_weight"})
        return inert

    def check_with(self, cfg) -> None:
        if self.swap_weight > 0 and cfg.data_set.type != "SynthFaces":
            raise ConfigError(f"loss.swap_weight needs the SynthFaces data set (it renders the counterfactual "
                              f"faces), not {cfg.data_set.type}; set it to 0")


class SwapPairs:
    """Per iteration, ``swap_pairs`` (target, reference) training faces of SynthFaces and one of
    ``swap_components`` each, drawn from (seed, iteration) alone (exact resume)."""

    def __init__(self, cfg):
        args = cfg.data_set.args
        self.seed = int(synthfaces_setting(args, "seed"))
        self.size, self.n = int(cfg.model_config().encoder.size), cfg.loss.swap_pairs
        self.train_ids = split_ranges(*(synthfaces_setting(args, k) for k in ("num_train", "num_val", "num_test")))["train"]
        self.run_seed = int(cfg.seed)
        self.choices = list(cfg.loss.swap_components)
        self.faces = None  # the training SynthFaces data set, whose render cache holds targets and references
        self.take = torch.zeros(len(self.choices), len(COMPONENTS), dtype=torch.bool)  # [choices, 4]
        for k, spec in enumerate(self.choices):
            self.take[k, list(component_indices(spec))] = True

    def __call__(self, iteration: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.batch(iteration)

    def batch(self, iteration: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(targets, references, truths) float32 [n, 3, S, S] and the swapped components, ``take``
        bool [n, 4]."""
        rng = np.random.default_rng([self.run_seed, 0x5A, iteration])
        ids = rng.integers(0, len(self.train_ids), size=(2, self.n))
        choice = rng.integers(0, len(self.choices), size=self.n)
        tgt, ref, truth = transfer_pairs(self.seed, [self.train_ids[i] for i in ids[0]],
                                         [self.train_ids[i] for i in ids[1]], [self.choices[c] for c in choice],
                                         self.size, faces=self.faces)
        return tgt, ref, truth, self.take[torch.from_numpy(choice)]


class CounterfactualLoss(IAFacesLoss):
    """The release's objective plus the terms of the module docstring."""

    config_class = CounterfactualLossConfig
    cfg: CounterfactualLossConfig

    def __init__(self, cfg: CounterfactualLossConfig, trainer):
        super().__init__(cfg, trainer)
        size = trainer.model_config.encoder.size
        self.box_mask = component_box_mask(size).to(trainer.device)  # [1, 1, S, S]
        self.comp_masks = torch.zeros(len(COMPONENTS), 1, size, size, device=trainer.device)  # one box each
        for i, (x0, y0, x1, y1) in enumerate(boxes_at(size)):
            self.comp_masks[i, :, y0:y1, x0:x1] = 1
        self.swap = SwapPairs(trainer.cfg) if cfg.swap_weight > 0 else None
        # Rendering the pairs is host work: the training loader's workers make them ahead of the step
        # (``iteration_data``), and the step takes them here; without workers the step renders them.
        self.iteration_data = self.swap
        self._received: tuple = (None, None)

    def receive_iteration_data(self, iteration: int, data) -> None:
        """The swap pairs of ``iteration``, made by a loader worker (``iteration_data(iteration)``)."""
        self._received = (iteration, data)

    def swap_batch(self, iteration: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        held, data = self._received
        self._received = (None, None)
        return tuple(data) if held == iteration else self.swap.batch(iteration)

    def uses_discriminator(self, iteration: int) -> bool:
        return self.cfg.adversarial and iteration >= self.cfg.gan_start

    def decode(self, x: Tensor, mask: Tensor, iteration: int) -> dict:
        if self.swap is None:
            return super().decode(x, mask, iteration)
        fake, swapped, truth, take = self.swap_forward(x, mask, iteration)
        return {"fake": fake, "swapped": swapped, "truth": truth, "take": take}

    def swap_forward(self, x: Tensor, mask: Tensor, iteration: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One encoder and one generator pass over the batch and this iteration's swap pairs:
        (reconstruction of x, decoded swapped targets, their rendered counterfactuals, ``take``)."""
        t = self.trainer
        target, reference, truth, take = (v.to(t.device, non_blocking=True) for v in self.swap_batch(iteration))
        n, m = x.shape[0], target.shape[0]
        images = torch.cat([x, target.to(x.dtype), reference.to(x.dtype)]).contiguous(memory_format=t.memory_format)
        masks = torch.cat([mask, mask.new_ones(2 * m, *mask.shape[1:])])
        if getattr(t.E, "selective", False):  # skip what is discarded: the references' content and the
            # embeddings the pairs do not take (the same values, gradients up to rounding, a quarter of the encoder less)
            needed = torch.cat([take.new_ones(n, take.shape[1]), ~take, take])
            content, components = t.E_train(images, masks, content_rows=n + m, needed=needed)
        else:
            content, components = t.E_train(images, masks)
        swapped = torch.where(take[..., None], components[n + m:], components[n:n + m])  # take: [m, 4]
        out = t.G_train(content[:n + m], torch.cat([components[:n], swapped]), noise_mode=t.noise_mode).float()
        return out[:n], out[n:], truth, take

    def extra_terms(self, loss: Tensor, x: Tensor, out: dict, logs: dict) -> Tensor:
        L, fake = self.cfg, out["fake"]
        if L.box_l1_weight > 0:
            box_l1 = ((fake - x).abs() * self.box_mask).sum() / (self.box_mask.sum() * x.shape[0] * x.shape[1])
            loss = loss + L.box_l1_weight * box_l1
            logs["box_l1"] = box_l1.item()
        if self.swap is not None:
            swap_err = (out["swapped"] - out["truth"]).abs()
            swap_l1 = swap_err.mean()
            loss = loss + L.swap_weight * swap_l1
            logs["swap_l1"] = swap_l1.item()
            if L.swap_box_weight > 0:
                m = (out["take"].to(self.comp_masks.dtype) @ self.comp_masks.flatten(1)).clamp(max=1)
                m = m.view(-1, 1, *self.comp_masks.shape[-2:])  # [m, 1, S, S]: each pair's swapped boxes
                swap_box = (swap_err * m).sum() / (m.sum() * swap_err.shape[1])
                loss = loss + L.swap_box_weight * swap_box
                logs["swap_box_l1"] = swap_box.item()
        return loss
