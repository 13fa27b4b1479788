"""BaseTrainer: the iteration loop, logging, validation schedule, checkpoints and exact resume.

Subclasses implement ``train_step``, ``validate``, ``visualize``, ``state_dict`` and
``load_state_dict``. Iterations are counted globally; an epoch is ``steps_per_epoch`` iterations.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
from tqdm import tqdm

from model.checkpoint import atomic_save
from utils.errors import ConfigError

from .config import TrainConfig


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_logger(log_dir: Optional[Path], verbosity: int, is_main: bool) -> logging.Logger:
    logger = logging.getLogger("iafaces.train")
    logger.handlers.clear()
    logger.propagate = False
    level = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}.get(verbosity, logging.INFO)
    logger.setLevel(level if is_main else logging.ERROR)
    if is_main:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        console.setLevel(min(level, logging.INFO))
        logger.addHandler(console)
        if log_dir is not None:
            fh = logging.FileHandler(log_dir / "info.log")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(fh)
    return logger


class BaseTrainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path, log_dir: Path, device: torch.device,
                 dist_info: DistInfo, resume: Optional[dict] = None):
        self.cfg, self.run_dir, self.log_dir = cfg, Path(run_dir).resolve(), Path(log_dir).resolve()
        self.device, self.dist = device, dist_info
        t = cfg.trainer
        self.iteration, self.epoch = 0, 0
        mode, _, metric = t.monitor.partition(" ")
        self.monitor_mode, self.monitor_metric = (None, None) if t.monitor == "off" else (mode, metric)
        self.monitor_best = math.inf if self.monitor_mode == "min" else -math.inf
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            (self.log_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self.logger = setup_logger(self.log_dir if self.dist.is_main else None, t.verbosity, self.dist.is_main)
        self.writer = None
        if t.tensorboard and self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter  # heavy import, needed only with tensorboard on
            self.writer = SummaryWriter(str(self.log_dir))
        self._resume_payload = resume

    # -- hooks ------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        raise NotImplementedError

    def epoch_batches(self, epoch: int, start: int):
        raise NotImplementedError

    def train_step(self, batch) -> dict:
        raise NotImplementedError

    def validate(self) -> dict:
        raise NotImplementedError

    def visualize(self, batch) -> None:
        pass

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        pass

    # -- loop -------------------------------------------------------------------------------
    def total_iterations(self) -> int:
        t = self.cfg.trainer
        total = t.epochs * self.steps_per_epoch()
        return min(total, t.iters) if t.iters is not None else total

    def train(self) -> dict:
        if self._resume_payload is not None:
            self._restore(self._resume_payload)
            self._resume_payload = None
        t = self.cfg.trainer
        steps = self.steps_per_epoch()
        if steps < 1:
            raise ConfigError("the training set is smaller than one batch; lower --bz or add images")
        total = self.total_iterations()
        self.logger.info(f"training {self.cfg.exp_id}: {total} iterations ({steps} per epoch), "
                         f"world size {self.dist.world_size}, device {self.device}, run dir {self.run_dir}")
        bar = tqdm(total=total, initial=self.iteration, disable=not self.dist.is_main, dynamic_ncols=True,
                   desc=self.cfg.exp_id, smoothing=0.05)
        last_logs: dict = {}
        val_logs: dict = {}
        while self.iteration < total:
            start = self.iteration - self.epoch * steps
            for batch in self.epoch_batches(self.epoch, start):
                logs = self.train_step(batch)
                self.iteration += 1
                last_logs = logs
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in self.progress_keys})
                if self.writer is not None and (self.iteration % t.log_period == 0 or self.iteration == 1):
                    for k, v in logs.items():
                        self.writer.add_scalar(f"train/{k}", v, self.iteration)
                    for k, v in self.learning_rates().items():
                        self.writer.add_scalar(f"lr/{k}", v, self.iteration)
                if self.dist.is_main and t.vis_period > 0 and self.iteration % t.vis_period == 0:
                    self.visualize(batch)
                epoch_done = self.iteration - self.epoch * steps >= steps
                if epoch_done:
                    self.epoch += 1
                    self.on_epoch_end()
                    if t.val_period > 0 and self.epoch % t.val_period == 0:
                        val_logs = self._validate_and_track()
                    if self.dist.is_main and t.save_period > 0 and self.epoch % t.save_period == 0:
                        self.save(f"checkpoint-epoch{self.epoch}.pth")
                if self.dist.is_main and t.update_ckpt > 0 and self.iteration % t.update_ckpt == 0:
                    self.save("latest.pth")
                if self.iteration >= total or epoch_done:
                    break
        bar.close()
        if self.dist.is_main:
            self.save("latest.pth")
        if self.writer is not None:
            self.writer.flush()
        self.logger.info(f"finished at iteration {self.iteration}; last losses "
                         + ", ".join(f"{k} {v:.4f}" for k, v in last_logs.items()))
        return {**last_logs, **{f"val_{k}": v for k, v in val_logs.items()}}

    progress_keys = ("loss_g", "loss_d", "l1")

    def learning_rates(self) -> dict:
        return {}

    def _validate_and_track(self) -> dict:
        logs = self.validate()
        if self.dist.is_main:
            self.logger.info(f"epoch {self.epoch} iteration {self.iteration}: "
                             + ", ".join(f"{k} {v:.5f}" for k, v in logs.items()))
            if self.writer is not None:
                for k, v in logs.items():
                    self.writer.add_scalar(f"val/{k}", v, self.iteration)
            if self.monitor_mode is not None and self.monitor_metric not in logs:
                raise ConfigError(f"trainer.monitor names '{self.monitor_metric}', which validation does not report "
                                  f"(it reports {', '.join(logs)})")
            if self.monitor_mode is not None:
                value = logs[self.monitor_metric]
                better = value < self.monitor_best if self.monitor_mode == "min" else value > self.monitor_best
                if better:
                    self.monitor_best = value
                    self.save("best.pth")
        if self.dist.enabled:
            dist.barrier()
        return logs

    # -- checkpoints ------------------------------------------------------------------------
    def save(self, name: str) -> Path:
        state = self.state_dict()
        state.update({
            "iteration": self.iteration,
            "epoch": self.epoch,
            "monitor_best": self.monitor_best,
            "run_id": self.run_dir.name,  # resume derives its folders from the save dir, exp id and run id
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        })
        path = self.run_dir / name
        atomic_save(state, path)
        self.logger.debug(f"saved {path}")
        return path

    def _restore(self, payload: dict) -> None:
        self.load_state_dict(payload)
        self.iteration = int(payload["iteration"])
        self.epoch = int(payload["epoch"])
        self.monitor_best = float(payload.get("monitor_best", self.monitor_best))
        torch.set_rng_state(payload["rng_torch"])
        if torch.cuda.is_available() and payload.get("rng_cuda"):
            states = payload["rng_cuda"]
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)
        self.logger.info(f"resumed at iteration {self.iteration} (epoch {self.epoch})")
