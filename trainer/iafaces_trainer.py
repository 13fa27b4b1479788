"""The IA-FaceS training procedure (the release's): D step with lazy R1, then the E/G step on the
configured loss (``trainer.registry``: the release's L1 + LPIPS + adversarial, or the project's
counterfactual loss), EMA of encoder and generator, two Adam optimizers. Without an adversarial
term no discriminator is built, trained or saved."""
from __future__ import annotations

import contextlib
import inspect
import math
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel as DDP

from model import build_networks
from model.checkpoint import pack_checkpoint
from utils.device import ddp_device_args, native_bf16, pin_memory
from utils.errors import ConfigError
from utils.image_io import make_grid, save_image

from .base_trainer import BaseTrainer, DistInfo
from .config import TrainConfig
from .data import AugmentedDataset, EpochBatchSampler, PlainDataset, limit, training_loader
from .losses import d_logistic_loss, r1_penalty
from .registry import loss_class, loss_type


@torch.no_grad()
def copy_parameters(target: nn.Module, source: nn.Module) -> None:
    """Set ``target``'s parameters from ``source`` (same architecture); buffers are kept."""
    for pt, ps in zip(target.parameters(), source.parameters()):
        pt.copy_(ps.detach())


@torch.no_grad()
def broadcast_states(modules, buffers_only: bool) -> None:
    """Broadcast rank 0's buffers (and parameters unless ``buffers_only``) to every rank."""
    for m in modules:
        tensors = list(m.buffers()) if buffers_only else list(m.parameters()) + list(m.buffers())
        for t in tensors:
            dist.broadcast(t.data, src=0)


def validation_noise(generator: nn.Module, indices, seed: int, device, dtype=torch.float32) -> list:
    """Random noise maps for validation samples ``indices``: sample i always gets the same maps
    (drawn from a generator seeded with ``seed`` and i), so validation does not depend on batching
    or on the number of processes."""
    shapes = [tuple(getattr(generator.noises, f"noise_{j}").shape[-2:]) for j in range(generator.cfg.num_noises)]
    per = []
    for i in indices:
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i))
        per.append([torch.randn(1, 1, *hw, generator=g) for hw in shapes])
    return [torch.cat([p[j] for p in per]).to(device=device, dtype=dtype) for j in range(len(shapes))]


@torch.no_grad()
def linear_decay(iteration: int, total: int, start: float) -> float:
    """Learning-rate factor of LinearDecay at 0-based ``iteration`` of ``total``: 1 up to
    ``start * total``, then falling linearly to reach 0 after the last iteration."""
    begin = start * total
    if iteration < begin or total <= begin:
        return 1.0
    return max(0.0, (total - iteration) / (total - begin))


def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """``target = decay * target + (1 - decay) * source`` over parameters (buffers untouched)."""
    for pt, ps in zip(target.parameters(), source.parameters()):
        pt.lerp_(ps.detach(), 1.0 - decay)


class IAFacesTrainer(BaseTrainer):
    def __init__(self, cfg: TrainConfig, train_set, val_set, run_dir: Path, log_dir: Path,
                 device: torch.device, dist_info: Optional[DistInfo] = None, resume: Optional[dict] = None,
                 released: Optional[dict] = None, finetune: bool = False):
        dist_info = dist_info or DistInfo()
        super().__init__(cfg, run_dir, log_dir, device, dist_info, resume)
        self.model_config = cfg.model_config()
        E, G, D = build_networks(self.model_config)  # D is built either way: see below
        if not cfg.loss.adversarial:
            # No adversarial term: no discriminator to train or save. It was still built above, so
            # that a seed draws the same random numbers (the EMA copies' noise buffers, the training
            # noise) whether or not the loss is adversarial.
            D = None
        self.E, self.G = E.to(device), G.to(device)
        self.D = D.to(device) if D is not None else None
        self.networks = [m for m in (self.E, self.G, self.D) if m is not None]
        self.memory_format = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
        if cfg.trainer.channels_last:
            for m in self.networks:
                m.to(memory_format=torch.channels_last)
        # The EMA models are built separately, as the release: their own random init and their own
        # noise buffers (the ones saved in the checkpoint), then their parameters are set from E, G.
        e_ema, g_ema, _ = build_networks(self.model_config, discriminator=False)
        self.e_ema = e_ema.to(device).eval().requires_grad_(False)
        self.g_ema = g_ema.to(device).eval().requires_grad_(False)
        if released is not None:
            self._load_released_networks(released)
        else:
            copy_parameters(self.e_ema, self.E)
            copy_parameters(self.g_ema, self.G)
        if dist_info.enabled:
            # DDP broadcasts rank 0's parameters when it wraps a module; buffers are not synced in
            # forward passes (the noise buffers are fixed), so they are broadcast once below. Every
            # parameter gets a gradient in each step that runs its network (tests/trainer/
            # test_device_placement.py), so DDP need not search the graph for unused ones.
            no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                       inspect.signature(DDP.__init__).parameters else {"broadcast_buffers": False})
            ddp = {**ddp_device_args(device), **no_sync, "find_unused_parameters": False}
            self.E_train = DDP(self.E, **ddp)
            self.G_train = DDP(self.G, **ddp)
            self.D_train = DDP(self.D, **ddp) if self.D is not None else None
            # After the broadcast: every rank holds rank 0's networks, EMA copies included.
            broadcast_states(self.networks, buffers_only=True)
            broadcast_states([self.e_ema, self.g_ema], buffers_only=False)
        else:
            self.E_train, self.G_train, self.D_train = self.E, self.G, self.D
        L, O = cfg.loss, cfg
        self.opt_G = torch.optim.Adam(list(self.E.parameters()) + list(self.G.parameters()),
                                      lr=O.optimizer_G.lr, betas=(O.optimizer_G.beta1, 0.99))
        self.opt_D = None
        if self.D is not None:
            ratio = L.d_reg_every / (L.d_reg_every + 1)
            self.opt_D = torch.optim.Adam(self.D.parameters(), lr=O.optimizer_D.lr * ratio,
                                          betas=(O.optimizer_D.beta1 ** ratio, 0.99 ** ratio))
        self.schedulers = {}  # ExponentialLR, stepped after each epoch
        self.lr_decay_start = {}  # LinearDecay: a function of the iteration, set before each step
        if cfg.trainer.lr_schedulers == "apply":
            for name, spec, opt in (("G", cfg.lr_scheduler_G, self.opt_G), ("D", cfg.lr_scheduler_D, self.opt_D)):
                if spec is None or opt is None:  # arguments checked with the config
                    continue
                if spec.type == "LinearDecay":
                    self.lr_decay_start[name] = spec.args["start"]
                else:
                    self.schedulers[name] = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=spec.args["gamma"])
        self.ema_decay = 0.5 ** (32 / (cfg.trainer.ema_half_life_kimg * 1000))
        self.noise_mode = self.model_config.generator.train_noise
        self.amp = cfg.trainer.amp == "bf16"
        if self.amp and not native_bf16(device):
            self.amp = False
            self.logger.info(f"notice: trainer.amp 'bf16' is off: {device.type} has no native bf16 here (bf16 "
                             "autocast would run tens of times slower than float32); training in float32")
        self.loss = loss_class(loss_type(L))(L, self)
        dl = cfg.data_loader
        self.batch_size = dl.batch_size
        from data_loader.masks import mask_settings
        try:
            masks = mask_settings(cfg.data_set.type, self.model_config.encoder.size, dl.mask_p, dl.mask_width,
                                  dl.mask_size)
        except ValueError as e:
            raise ConfigError(f"data_loader: {e}") from None
        self.mask_settings = masks
        if getattr(self.loss, "swap", None) is not None and hasattr(train_set, "image"):
            self.loss.swap.faces = train_set  # SynthFaces: swap targets and references from its render cache
        self.train_set = AugmentedDataset(limit(train_set, dl.num_samples), cfg.seed, dl.flip_p, masks.p,
                                          mask_width=masks.width, mask_canvas=masks.canvas)
        self.val_set = PlainDataset(limit(val_set, dl.num_val_samples))
        vn = cfg.trainer.val_noise
        self.val_noise = self.model_config.generator.train_noise if vn == "default" else vn
        self._vis_batch = None
        self._loader = None  # built on first use: one for the run, its workers kept across epochs
        self._released = None
        if released is not None:
            self._released = (released, finetune)
            self._load_released_optimizers(released, finetune)

    # -- data -------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return EpochBatchSampler.steps_per_epoch(len(self.train_set), self.batch_size, self.dist.world_size)

    def epoch_batches(self, epoch: int, start: int):
        if self._loader is None:
            dl = self.cfg.data_loader
            self._loader = training_loader(self.train_set, self.batch_size, self.cfg.seed, dl.shuffle, self.dist.rank,
                                           self.dist.world_size, dl.num_workers, pin_memory(self.device),
                                           extras=getattr(self.loss, "iteration_data", None))
        self._loader.sampler.set_epoch(epoch, start)
        return self._loader

    # -- one iteration ----------------------------------------------------------------------
    def autocast(self):
        """bf16 autocast on the training device when ``trainer.amp`` is ``bf16``."""
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, batch) -> dict:
        x = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        mask = batch["mask"].to(self.device, non_blocking=True)
        if "extras" in batch and batch["iteration"] == self.iteration:
            self.loss.receive_iteration_data(self.iteration, batch["extras"])
        logs = {}
        if self.lr_decay_start:
            self._decay_learning_rates()
        use_gan = self.loss.uses_discriminator(self.iteration)
        if use_gan:
            self._d_step(x, mask, logs)
        # G step (E and G together; D frozen and used without its DDP wrapper).
        if self.D is not None:
            self.D.requires_grad_(False)
        loss_g, g_logs = self.loss.generator_loss(x, mask, self.iteration)
        logs.update(g_logs)
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        if self.D is not None:
            self.D.requires_grad_(True)
        logs["loss_g"] = loss_g.item()
        ema_update(self.e_ema, self.E, self.ema_decay)
        ema_update(self.g_ema, self.G, self.ema_decay)
        if self._vis_batch is None:
            n = self.cfg.trainer.vis_img_num
            self._vis_batch = (x[:n].detach().cpu(), mask[:n].detach().cpu())
        return logs

    def base_learning_rate(self, name: str) -> float:
        """The config's rate of optimizer ``name`` ("G" or "D"; D's scaled for lazy R1 as the release)."""
        if name == "G":
            return self.cfg.optimizer_G.lr
        L = self.cfg.loss
        return self.cfg.optimizer_D.lr * L.d_reg_every / (L.d_reg_every + 1)

    def _decay_learning_rates(self) -> None:
        total = self.total_iterations()
        for name, start in self.lr_decay_start.items():
            opt = self.opt_G if name == "G" else self.opt_D
            lr = self.base_learning_rate(name) * linear_decay(self.iteration, total, start)
            for group in opt.param_groups:
                group["lr"] = lr

    def _d_step(self, x, mask, logs) -> None:
        L = self.cfg.loss
        # 1. D step (E, G frozen).
        with torch.no_grad(), self.autocast():
            fake = self.G(*self.E(x, mask), noise_mode=self.noise_mode)
        with self.autocast():
            pred = self.D_train(torch.cat([x, fake.to(x.dtype)])).float()
        real_pred, fake_pred = pred[: x.shape[0]], pred[x.shape[0]:]
        loss_d = d_logistic_loss(real_pred, fake_pred) * L.d_loss_weight
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()
        logs["loss_d"] = loss_d.item()
        logs["real_score"] = real_pred.mean().item()
        logs["fake_score"] = fake_pred.mean().item()
        # 2. Lazy R1 every d_reg_every iterations; the release increases its counter before the
        # step, so R1 runs at iterations 16, 32, ... (1-based).
        if L.r1 > 0 and (self.iteration + 1) % L.d_reg_every == 0:
            xr = x.detach().requires_grad_(True)
            real_pred = self.D_train(xr)
            r1 = r1_penalty(real_pred, xr)
            self.opt_D.zero_grad(set_to_none=True)
            (L.r1 / 2 * r1 * L.d_reg_every + 0 * real_pred[0, 0]).backward()
            self.opt_D.step()
            logs["r1"] = r1.item()

    def on_epoch_end(self) -> None:
        for sched in self.schedulers.values():
            sched.step()

    def learning_rates(self) -> dict:
        rates = {"G": self.opt_G.param_groups[0]["lr"]}
        if self.opt_D is not None:
            rates["D"] = self.opt_D.param_groups[0]["lr"]
        return rates

    # -- validation and pictures ------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict:
        """MSE (on [-1, 1]) and PSNR of the EMA models on the validation images, with each model's
        default noise (``trainer.val_noise``): the noise buffers, or random noise drawn per sample
        (:func:`validation_noise`). The images are split into batches of the loader's batch size
        that the ranks take in turn; per-image errors are gathered exactly and summed with
        ``math.fsum``, so the result does not depend on the number of processes."""
        n = len(self.val_set)
        bs = max(1, self.batch_size)
        batches = [list(range(b, min(b + bs, n))) for b in range(0, n, bs)]
        per = torch.zeros(n, dtype=torch.float64, device=self.device)
        for idx in batches[self.dist.rank::self.dist.world_size]:
            x = torch.stack([self.val_set[i]["image"] for i in idx]).to(self.device)
            content, components = self.e_ema(x)
            noise = (validation_noise(self.g_ema, idx, self.cfg.seed, self.device, x.dtype)
                     if self.val_noise == "random" else None)
            y = self.g_ema(content, components, noise_mode="const", noise=noise)
            per[idx] = (y.double() - x.double()).square().mean(dim=(1, 2, 3))
        if self.dist.enabled:
            dist.all_reduce(per)  # each entry is set on one rank only: exact
        mse = math.fsum(per.cpu().tolist()) / max(n, 1)
        return {"avg_mse": mse, "psnr": 10 * math.log10(4.0 / max(mse, 1e-12))}

    @torch.no_grad()
    def visualize(self, batch) -> None:
        """Grid of input | masked input | EMA reconstruction of the masked input."""
        if self._vis_batch is None:
            return
        x, mask = (t.to(self.device) for t in self._vis_batch)
        y = self.g_ema(*self.e_ema(x, mask), noise_mode="const").clamp(-1, 1)
        rows = [[a, b, c] for a, b, c in zip(x, x * mask, y)]
        grid = make_grid(rows)
        out = self.log_dir / "samples" / f"iter_{self.iteration:07d}.png"
        save_image(grid, out)
        if self.writer is not None:
            self.writer.add_image("samples/input_masked_reconstruction", (grid + 1) / 2, self.iteration)

    # -- released checkpoints ---------------------------------------------------------------
    def _load_released_networks(self, payload: dict) -> None:
        """E, G, D and the EMA copies from a released checkpoint (``state_dict_E/G`` fall back to
        the EMA weights, a missing D keeps its fresh initialisation)."""
        from model.convert import ConversionError, load_official_state_dict
        from utils.errors import CheckpointError

        try:
            load_official_state_dict(self.e_ema, payload["e_ema"], "released checkpoint: e_ema")
            load_official_state_dict(self.g_ema, payload["g_ema"], "released checkpoint: g_ema")
            load_official_state_dict(self.E, payload.get("state_dict_E", payload["e_ema"]),
                                     "released checkpoint: state_dict_E")
            load_official_state_dict(self.G, payload.get("state_dict_G", payload["g_ema"]),
                                     "released checkpoint: state_dict_G")
            if "state_dict_D" in payload and self.D is not None:
                load_official_state_dict(self.D, payload["state_dict_D"], "released checkpoint: state_dict_D")
        except ConversionError as e:
            raise CheckpointError(str(e)) from None
        missing = [k for k in ("state_dict_E", "state_dict_G") + (("state_dict_D",) if self.D is not None else ())
                   if k not in payload]
        if missing:
            self.logger.info(f"the released checkpoint has no {', '.join(missing)}: E/G start from the EMA weights, "
                             "D from a fresh initialisation")

    def _load_released_optimizers(self, payload: dict, finetune: bool) -> None:
        """Continue (default): optimizer states where the file has ones that fit, epoch counter and
        best validation MSE from the file; fine-tune: weights only, counters at 0."""
        from .released import optimizer_state_from_release

        if finetune:
            self.logger.info("fine-tuning a released checkpoint: its weights, fresh optimizers, counters at 0")
            return
        for key, opt, nets in (("optimizer_G", self.opt_G, [self.E, self.G]), ("optimizer_D", self.opt_D, [self.D])):
            if opt is None:
                continue
            state = payload.get(key)
            mapped = optimizer_state_from_release(state, nets) if isinstance(state, dict) else None
            if mapped is None:
                self.logger.info(f"{key} of the released checkpoint {'is absent' if state is None else 'does not fit'};"
                                 " it starts fresh")
                continue
            for group in mapped["param_groups"]:  # the project's learning rates and betas apply
                group.update({k: v for k, v in opt.param_groups[0].items() if k != "params"})
            opt.load_state_dict(mapped)
        epoch = payload.get("epoch")
        self.epoch = int(epoch) if isinstance(epoch, (int, float)) else 0
        self.iteration = self.epoch * self.steps_per_epoch()
        if isinstance(payload.get("avg_mse"), (int, float)) and self.monitor_mode == "min" \
                and self.monitor_metric == "avg_mse":
            self.monitor_best = float(payload["avg_mse"])
        self.logger.info(f"continuing a released checkpoint at epoch {self.epoch} (its iteration "
                         f"{payload.get('iteration')}; counted here as {self.iteration})")

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return pack_checkpoint(
            self.model_config, self.cfg.to_dict(), self.e_ema, self.g_ema, self.D, self.E, self.G,
            optimizer_G=self.opt_G.state_dict(),
            **({"optimizer_D": self.opt_D.state_dict()} if self.opt_D is not None else {}),
            schedulers={k: s.state_dict() for k, s in self.schedulers.items()}, avg_mse=self.monitor_best)

    def load_state_dict(self, state: dict) -> None:
        self.E.load_state_dict(state["encoder"])
        self.G.load_state_dict(state["generator"])
        self.e_ema.load_state_dict(state["e_ema"])
        self.g_ema.load_state_dict(state["g_ema"])
        self.opt_G.load_state_dict(state["optimizer_G"])
        if self.D is not None:
            if "discriminator" in state and "optimizer_D" in state:
                self.D.load_state_dict(state["discriminator"])
                self.opt_D.load_state_dict(state["optimizer_D"])
            else:
                self.logger.info("the checkpoint holds no discriminator (it was trained without the adversarial "
                                 "loss): the discriminator starts fresh")
        for k, s in self.schedulers.items():
            if k in state.get("schedulers", {}):
                s.load_state_dict(state["schedulers"][k])
        for note in self.apply_optimizer_config(int(state["epoch"])):
            if self.dist.is_main:
                print(f"notice: {note}", file=sys.stderr)

    def apply_optimizer_config(self, epoch: int) -> list[str]:
        """After optimizer and scheduler states were loaded (a resume, perhaps with another config):
        set every learning rate, beta1 and scheduler gamma to the config's, so that what runs is
        what the checkpoint and ``config.json`` record (with a scheduler the rate at ``epoch`` is
        ``lr * gamma ** epoch``). Returns one line per setting that changed."""
        notes = []
        ratio = self.cfg.loss.d_reg_every / (self.cfg.loss.d_reg_every + 1)
        for key, opt, name, scale in (("optimizer_G", self.opt_G, "G", 1.0), ("optimizer_D", self.opt_D, "D", ratio)):
            if opt is None:
                continue
            oc = getattr(self.cfg, key)
            base, beta1 = oc.lr * scale, oc.beta1 ** scale
            if name in self.lr_decay_start:
                continue  # set from the iteration before every step
            sched = self.schedulers.get(name)
            spec = getattr(self.cfg, f"lr_scheduler_{name}")
            gamma = spec.args["gamma"] if sched is not None else None
            changed = []
            for group in opt.param_groups:
                old_base = group.get("initial_lr", group["lr"])
                if not math.isclose(old_base, base, rel_tol=1e-9) and "lr" not in changed:
                    changed.append("lr")
                    notes.append(f"{key}.lr {old_base / scale:g} -> {oc.lr:g} (from the config)")
                if not math.isclose(group["betas"][0], beta1, rel_tol=1e-9, abs_tol=1e-12) and "beta1" not in changed:
                    changed.append("beta1")
                    notes.append(f"{key}.beta1 {group['betas'][0] ** (1 / scale):g} -> {oc.beta1:g} (from the config)")
            if sched is not None and not math.isclose(sched.gamma, gamma, rel_tol=1e-9):
                notes.append(f"lr_scheduler_{name}.args.gamma {sched.gamma:g} -> {gamma:g} (from the config)")
                changed.append("gamma")
                sched.gamma = gamma
            now = base * gamma ** epoch if sched is not None else base
            for group in opt.param_groups:
                if not math.isclose(group["lr"], now, rel_tol=1e-9):
                    if not changed:
                        notes.append(f"{key}: learning rate at epoch {epoch} {group['lr']:g} -> {now:g} (the "
                                     f"config's trainer.lr_schedulers and lr_scheduler_{name})")
                    changed.append("now")
                    group["lr"] = now
                if "beta1" in changed:
                    group["betas"] = (beta1, group["betas"][1])
                if sched is not None:
                    group["initial_lr"] = base
            if sched is not None and changed:
                sched.base_lrs = [base] * len(opt.param_groups)
                sched.last_epoch = epoch
                sched._last_lr = [g["lr"] for g in opt.param_groups]
        return notes
