"""The IA-FaceS training procedure (official): D step, lazy R1, G step (L1 + LPIPS + adversarial),
EMA of encoder and generator, two Adam optimizers."""
from __future__ import annotations

import contextlib
import copy
import inspect
import math
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from model import build_networks
from model.checkpoint import pack_checkpoint
from utils.errors import ConfigError
from utils.image_io import make_grid, save_image

from .base_trainer import BaseTrainer, DistInfo
from .config import TrainConfig
from .data import AugmentedDataset, EpochBatchSampler, PlainDataset, epoch_loader, limit
from .losses import PerceptualLoss, d_logistic_loss, g_nonsaturating_loss, r1_penalty


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, DDP) else m


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, decay: float) -> None:
    """``target = decay * target + (1 - decay) * source`` over parameters (buffers untouched)."""
    for pt, ps in zip(target.parameters(), source.parameters()):
        pt.lerp_(ps.detach(), 1.0 - decay)


class IAFacesTrainer(BaseTrainer):
    def __init__(self, cfg: TrainConfig, train_set, val_set, run_dir: Path, log_dir: Path,
                 device: torch.device, dist_info: Optional[DistInfo] = None, resume: Optional[dict] = None):
        dist_info = dist_info or DistInfo()
        super().__init__(cfg, run_dir, log_dir, device, dist_info, resume)
        self.model_config = cfg.model_config()
        E, G, D = build_networks(self.model_config)
        self.E, self.G, self.D = E.to(device), G.to(device), D.to(device)
        self.e_ema = copy.deepcopy(self.E).eval().requires_grad_(False)
        self.g_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        if dist_info.enabled:
            ids = [device.index] if device.type == "cuda" else None
            # Buffers (noise, FIR kernels) are identical on every rank: no need to sync them.
            no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                       inspect.signature(DDP.__init__).parameters else {"broadcast_buffers": False})
            self.E_train = DDP(self.E, device_ids=ids, **no_sync)
            self.G_train = DDP(self.G, device_ids=ids, **no_sync)
            self.D_train = DDP(self.D, device_ids=ids, **no_sync)
        else:
            self.E_train, self.G_train, self.D_train = self.E, self.G, self.D
        L, O = cfg.loss, cfg
        ratio = L.d_reg_every / (L.d_reg_every + 1)
        self.opt_G = torch.optim.Adam(list(self.E.parameters()) + list(self.G.parameters()),
                                      lr=O.optimizer_G.lr, betas=(0.0, 0.99))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=O.optimizer_D.lr * ratio,
                                      betas=(0.0, 0.99 ** ratio))
        self.schedulers = {}
        if cfg.trainer.lr_schedulers == "apply":
            for name, spec, opt in (("G", cfg.lr_scheduler_G, self.opt_G), ("D", cfg.lr_scheduler_D, self.opt_D)):
                if spec is not None:
                    self.schedulers[name] = torch.optim.lr_scheduler.ExponentialLR(opt, **spec.args)
        self.perceptual = (PerceptualLoss(L.lpips_backbone, L.lpips_vgg_weights).to(device)
                           if L.p_loss_weight > 0 else None)
        self.ema_decay = 0.5 ** (32 / (cfg.trainer.ema_half_life_kimg * 1000))
        self.noise_mode = self.model_config.generator.train_noise
        self.amp = cfg.trainer.amp == "bf16" and device.type == "cuda"
        dl = cfg.data_loader
        self.batch_size = dl.batch_size
        from data_loader.masks import mask_settings
        try:
            masks = mask_settings(cfg.data_set.type, self.model_config.encoder.size, dl.mask_p, dl.mask_width,
                                  dl.mask_size)
        except ValueError as e:
            raise ConfigError(f"data_loader: {e}") from None
        self.mask_settings = masks
        self.train_set = AugmentedDataset(limit(train_set, dl.num_samples), cfg.seed, dl.flip_p, masks.p,
                                          mask_width=masks.width, mask_canvas=masks.canvas)
        self.val_set = PlainDataset(limit(val_set, dl.num_val_samples))
        self._vis_batch = None

    # -- data -------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return EpochBatchSampler.steps_per_epoch(len(self.train_set), self.batch_size, self.dist.world_size)

    def epoch_batches(self, epoch: int, start: int):
        dl = self.cfg.data_loader
        return epoch_loader(self.train_set, self.batch_size, self.cfg.seed, epoch, dl.shuffle, self.dist.rank,
                            self.dist.world_size, start, dl.num_workers, self.device.type == "cuda")

    # -- one iteration ----------------------------------------------------------------------
    def _autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, batch) -> dict:
        L = self.cfg.loss
        x = batch["image"].to(self.device, non_blocking=True)
        mask = batch["mask"].to(self.device, non_blocking=True)
        logs = {}
        # 1. D step (E, G frozen).
        with torch.no_grad(), self._autocast():
            fake = self.G(*self.E(x, mask), noise_mode=self.noise_mode)
        with self._autocast():
            pred = self.D_train(torch.cat([x, fake.to(x.dtype)])).float()
        real_pred, fake_pred = pred[: x.shape[0]], pred[x.shape[0]:]
        loss_d = d_logistic_loss(real_pred, fake_pred) * L.d_loss_weight
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()
        logs["loss_d"] = loss_d.item()
        logs["real_score"] = real_pred.mean().item()
        logs["fake_score"] = fake_pred.mean().item()
        # 2. Lazy R1 every d_reg_every iterations (counted from 0, as the official loop).
        if L.r1 > 0 and self.iteration % L.d_reg_every == 0:
            xr = x.detach().requires_grad_(True)
            real_pred = self.D_train(xr)
            r1 = r1_penalty(real_pred, xr)
            self.opt_D.zero_grad(set_to_none=True)
            (L.r1 / 2 * r1 * L.d_reg_every + 0 * real_pred[0, 0]).backward()
            self.opt_D.step()
            logs["r1"] = r1.item()
        # 3. G step (E and G together; D frozen and used without its DDP wrapper).
        self.D.requires_grad_(False)
        with self._autocast():
            fake = self.G_train(*self.E_train(x, mask), noise_mode=self.noise_mode).float()
            adv = g_nonsaturating_loss(self.D(fake).float())
        l1 = (fake - x).abs().mean()
        loss_g = L.l1_loss_weight * l1 + L.g_loss_weight * adv
        logs["l1"], logs["g_adv"] = l1.item(), adv.item()
        if self.perceptual is not None:
            p = self.perceptual(fake, x)
            loss_g = loss_g + L.p_loss_weight * p
            logs["lpips"] = p.item()
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        logs["loss_g"] = loss_g.item()
        # 4. EMA.
        ema_update(self.e_ema, self.E, self.ema_decay)
        ema_update(self.g_ema, self.G, self.ema_decay)
        if self._vis_batch is None:
            n = self.cfg.trainer.vis_img_num
            self._vis_batch = (x[:n].detach().cpu(), mask[:n].detach().cpu())
        return logs

    def on_epoch_end(self) -> None:
        for sched in self.schedulers.values():
            sched.step()

    def learning_rates(self) -> dict:
        return {"G": self.opt_G.param_groups[0]["lr"], "D": self.opt_D.param_groups[0]["lr"]}

    # -- validation and pictures ------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict:
        """MSE (on [-1, 1]) and PSNR of the EMA models on the validation images (rank-sharded)."""
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(self.val_set, range(self.dist.rank, len(self.val_set), self.dist.world_size)),
            batch_size=max(self.batch_size, 8), num_workers=0)
        for batch in loader:
            x = batch["image"].to(self.device)
            y = self.g_ema(*self.e_ema(x), noise_mode="const")
            total[0] += (y.double() - x.double()).square().mean(dim=(1, 2, 3)).sum()
            total[1] += x.shape[0]
        if self.dist.enabled:
            dist.all_reduce(total)
        mse = (total[0] / total[1].clamp(min=1)).item()
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

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return pack_checkpoint(
            self.model_config, self.cfg.to_dict(), self.e_ema, self.g_ema, self.D, self.E, self.G,
            optimizer_G=self.opt_G.state_dict(), optimizer_D=self.opt_D.state_dict(),
            schedulers={k: s.state_dict() for k, s in self.schedulers.items()}, avg_mse=self.monitor_best)

    def load_state_dict(self, state: dict) -> None:
        self.E.load_state_dict(state["encoder"])
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.e_ema.load_state_dict(state["e_ema"])
        self.g_ema.load_state_dict(state["g_ema"])
        self.opt_G.load_state_dict(state["optimizer_G"])
        self.opt_D.load_state_dict(state["optimizer_D"])
        for k, s in self.schedulers.items():
            if k in state.get("schedulers", {}):
                s.load_state_dict(state["schedulers"][k])
