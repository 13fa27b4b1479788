"""BaseTrainer: the iteration loop, logging, validation schedule, checkpoints and exact resume.

Subclasses implement ``train_step``, ``validate``, ``visualize``, ``state_dict`` and
``load_state_dict``. Iterations are counted globally; an epoch is ``steps_per_epoch`` iterations.

A run writes into its log folder only once training starts (``train``): a run that fails before
leaves nothing there. Training stops with a :class:`utils.errors.TrainingError` when a logged loss
is not finite, and no checkpoint is ever written with non-finite weights or optimizer states.
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
from tqdm import tqdm

from model.checkpoint import atomic_save
from utils.errors import ConfigError, TrainingError
from utils.pace import PaceWatch, ThreadGovernor

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


#: Checkpoints kept aside when a run is rolled back (``train.py -r <older> --overwrite``):
#: ``<name>.rolled-back-it<N>.pth`` (N: their iteration); they are never taken for the run's newest.
ROLLED_BACK_RE = re.compile(r"\.rolled-back-it\d+(_\d+)?\.pth$")


def checkpoint_iteration(path: Path) -> Optional[int]:
    """The training iteration an own-format checkpoint records, read without loading its tensors
    (memory-mapped, ``weights_only``); None when the file records none or cannot be read."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - a damaged or foreign file has no iteration to compare
        return None
    it = payload.get("iteration") if isinstance(payload, dict) else None
    return it if isinstance(it, int) and not isinstance(it, bool) and it >= 0 else None


def run_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """The checkpoints of a run folder that record an iteration, as (iteration, path), newest
    first (at equal iterations ``latest.pth`` first, then by name); rolled-back files excluded."""
    found = []
    if Path(folder).is_dir():
        for p in Path(folder).glob("*.pth"):
            if p.is_file() and not ROLLED_BACK_RE.search(p.name):
                it = checkpoint_iteration(p)
                if it is not None:
                    found.append((it, p))
    return sorted(found, key=lambda t: (-t[0], t[1].name != "latest.pth", t[1].name))


def first_non_finite(state: Any, where: str = "") -> Optional[str]:
    """The key path of the first floating-point tensor in the nested dicts and lists ``state``
    that holds a NaN or an infinity; None when every tensor is finite."""
    stack = [(state, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, torch.Tensor):
            if item.is_floating_point() and item.numel() and not bool(torch.isfinite(item).all()):
                return at
        elif isinstance(item, dict):
            stack.extend((v, f"{at}.{k}" if at else str(k)) for k, v in reversed(list(item.items())))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{at}[{i}]") for i, v in reversed(list(enumerate(item))))
    return None


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
        # The log folder (config.json, info.log, TensorBoard events) is written when training starts.
        self.logger = setup_logger(None, t.verbosity, self.dist.is_main)
        self.writer = None
        self._resume_payload = resume
        #: The checkpoint this run continues (train.py sets it): the last finite one until this run saves.
        self.resumed_from: Optional[Path] = None
        #: Drop to one CPU thread while another program holds a core (train.py: no --threads, one process).
        self.adapt_threads = False

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

    def open_logs(self) -> None:
        """Start writing the log folder: the resolved config, ``info.log`` and TensorBoard events."""
        t = self.cfg.trainer
        if self.dist.is_main:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            (self.log_dir / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2))
        self.logger = setup_logger(self.log_dir if self.dist.is_main else None, t.verbosity, self.dist.is_main)
        if t.tensorboard and self.dist.is_main and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter  # heavy import, needed only with tensorboard on
            self.writer = SummaryWriter(str(self.log_dir))

    def train(self) -> dict:
        t = self.cfg.trainer
        steps = self.steps_per_epoch()
        if steps < 1:
            raise ConfigError("the training set is smaller than one batch; lower --bz or add images")
        resumed = self._resume_payload is not None
        if resumed:
            self._restore(self._resume_payload)
            self._resume_payload = None
        self.open_logs()
        if resumed:
            self.logger.info(f"resumed at iteration {self.iteration} (epoch {self.epoch})")
        total = self.total_iterations()
        self.logger.info(f"training {self.cfg.exp_id}: {total} iterations ({steps} per epoch), "
                         f"world size {self.dist.world_size}, device {self.device}, run dir {self.run_dir}")
        bar = tqdm(total=total, initial=self.iteration, disable=not self.dist.is_main, dynamic_ncols=True,
                   desc=self.cfg.exp_id, smoothing=0.05)
        last_logs: dict = {}
        val_logs: dict = {}
        pace = self.pace_watch()
        try:
            while self.iteration < total:
                start = self.iteration - self.epoch * steps
                for batch in self.epoch_batches(self.epoch, start):
                    logs = self.train_step(batch)
                    self.iteration += 1
                    self.check_losses(logs)
                    last_logs = logs
                    bar.update(1)
                    notice = pace.step() if self.dist.is_main else None
                    if notice:
                        self.logger.info(notice)
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
        finally:
            bar.close()  # also when training stops: the error line starts a line of its own
        if self.dist.is_main:
            self.save("latest.pth")
        if self.writer is not None:
            self.writer.flush()
        self.logger.info(f"finished at iteration {self.iteration}; last losses "
                         + ", ".join(f"{k} {v:.4f}" for k, v in last_logs.items()))
        return {**last_logs, **{f"val_{k}": v for k, v in val_logs.items()}}

    progress_keys = ("loss_g", "loss_d", "l1")

    def pace_watch(self) -> PaceWatch:
        """Watches the iterations' pace; on a CPU, when ``adapt_threads`` (train.py: no ``--threads``
        given, one process), drops to one thread while another program holds a core."""
        if self.device.type != "cpu":
            return PaceWatch(hint="the host may be busy (data is made on the CPU)")
        if self.adapt_threads and torch.get_num_threads() > 1:
            return ThreadGovernor(torch.get_num_threads(), torch.set_num_threads,
                                  hint="another program may be using the CPU")
        return PaceWatch(hint="another program may be using the CPU: close it, or train beside it with --threads 1")

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

    # -- divergence -------------------------------------------------------------------------
    def check_losses(self, logs: dict) -> None:
        """TrainingError when a value the step logged (losses, scores) is NaN or infinite, on every
        process at once (a process whose own values are finite learns it from the others)."""
        bad = next((k for k, v in logs.items() if isinstance(v, (int, float)) and not math.isfinite(v)), None)
        if self.dist.enabled:
            flag = torch.tensor([0.0 if bad is None else 1.0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item() > 0 and bad is None:
                raise self.diverged("a loss of another process is not finite")
        if bad is not None:
            raise self.diverged(f"{bad} is {logs[bad]}")

    def last_finite_checkpoint(self) -> Optional[Path]:
        """The newest checkpoint of this run (none is written with non-finite values), else the
        one it continues."""
        found = run_checkpoints(self.run_dir)
        return found[0][1] if found else self.resumed_from

    def diverged(self, what: str) -> TrainingError:
        """The error that stops a diverged run: where, why, and the checkpoint to go on from."""
        last = self.last_finite_checkpoint()
        where = (f"the last finite checkpoint is {last}; lower the learning rate (optimizer_G.lr, optimizer_D.lr) "
                 f"in a config and continue with -r {last} -c CONFIG") if last is not None else \
            ("no checkpoint was written; lower the learning rate (optimizer_G.lr, optimizer_D.lr) and start again")
        return TrainingError(f"training diverged at iteration {self.iteration} ({what}); {where}")

    # -- checkpoints ------------------------------------------------------------------------
    def save(self, name: str) -> Path:
        """Write checkpoint ``name`` atomically; a TrainingError instead when any weight or
        optimizer state is not finite (the file on disk stays as it was)."""
        state = self.state_dict()
        bad = first_non_finite(state)
        if bad is not None:
            raise self.diverged(f"{bad} is not finite; {name} was not written")
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
