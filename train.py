"""Train IA-FaceS from a JSON config.

    python train.py -c configs/synthfaces.json
    python train.py -r saved/models/<exp_id>/<run>/latest.pth          # exact resume
    python train.py -r iafaces-celebahq.pth --epochs 220                 # continue a released checkpoint
    python train.py -r iafaces-celebahq.pth --finetune -c my_config.json # fine-tune a released checkpoint
    torchrun --nproc_per_node 4 train.py -c configs/iafaces-celebahq-256.json

A plain run uses every visible GPU (one process each; CUDA_VISIBLE_DEVICES narrows it); under
torchrun it uses the processes torchrun started. Batch size is per process.
"""
from __future__ import annotations

import argparse
import datetime
import os
import socket
import sys
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from data_loader.registry import build_dataset
from model.checkpoint import read_checkpoint
from trainer.base_trainer import DistInfo
from trainer.config import TrainConfig, load_config, parse_config
from trainer.iafaces_trainer import IAFacesTrainer
from utils.cli import main_guard
from utils.device import resolve_device
from utils.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train IA-FaceS (encoder, generator, discriminator).")
    p.add_argument("-c", "--config", help="JSON config (e.g. configs/synthfaces.json)")
    p.add_argument("-r", "--resume", help="checkpoint to resume exactly (its config is used unless -c is given), "
                   "or a released IA-FaceS checkpoint to continue (its epoch, optimizers) or fine-tune (--finetune)")
    p.add_argument("--finetune", action="store_true", help="with a released checkpoint: start from its weights "
                   "(E, G, D, EMA) with fresh optimizers and counters at 0")
    p.add_argument("--bz", type=int, help="batch size per process")
    p.add_argument("--epochs", type=int, help="number of epochs")
    p.add_argument("--iters", type=int, help="stop after this many iterations in total")
    p.add_argument("--save_dir", help="root folder for models/ and log/ (default: config trainer.save_dir)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--seed", type=int, help="random seed (default: config seed)")
    p.add_argument("--run_id", help="run folder name (default: start time MMDD_HHMMSS)")
    return p


def resolve_config(args) -> tuple[TrainConfig, Optional[dict], str]:
    """(config, checkpoint payload or None, "project" | "official" | "")."""
    from model.checkpoint import model_config_from_official
    from trainer.released import config_from_release

    payload, source = None, ""
    if args.resume:
        payload, source = read_checkpoint(args.resume)
        if source == "project" and "optimizer_G" not in payload:
            raise UserError(f"{args.resume} holds no training state to resume (only checkpoints written by "
                            "train.py and released IA-FaceS checkpoints can be resumed); use it with the editing "
                            "scripts instead")
    if args.finetune and source != "official":
        raise UserError("--finetune goes with a released checkpoint (-r released.pth)")
    if args.config:
        cfg = load_config(args.config)
    elif source == "official":
        mapped, dropped = config_from_release(payload["config"])
        cfg = parse_config(mapped, f"{args.resume} (released config, mapped)")
        if dropped:
            print(f"notice: entries of the released config not used here: {', '.join(dropped)}", file=sys.stderr)
    elif payload is not None:
        cfg = parse_config(payload["config"], f"{args.resume} (stored config)")
    else:
        raise UserError("give a config with -c CONFIG (e.g. configs/synthfaces.json) or a checkpoint with -r")
    if source == "project" and cfg.model_config().to_dict() != payload["model_config"]:
        raise UserError(f"the model in {args.config} differs from the one in {args.resume}; resume without -c")
    if source == "official":
        theirs = model_config_from_official(payload["config"]).to_dict()
        ours = cfg.model_config().to_dict()
        for d in (theirs, ours):  # the CAM box placement is an option, not part of the weights' shapes
            d["generator"].pop("cam_placement", None)
            d["generator"].pop("train_noise", None)
        if theirs != ours:
            raise UserError(f"the model in {args.config} differs from the released one in {args.resume}")
    t, dl = cfg.trainer, cfg.data_loader
    for value, obj, name in ((args.bz, dl, "batch_size"), (args.epochs, t, "epochs"), (args.iters, t, "iters"),
                             (args.save_dir, t, "save_dir"), (args.seed, cfg, "seed")):
        if value is not None:
            setattr(obj, name, value)
    if dl.batch_size < 1 or (t.iters is not None and t.iters < 0) or t.epochs < 1:
        raise UserError("--bz and --epochs must be positive and --iters non-negative")
    if source == "official" and not args.finetune and isinstance(payload.get("epoch"), (int, float)) \
            and t.epochs <= payload["epoch"]:
        raise UserError(f"{args.resume} ends at epoch {payload['epoch']}; continue it with --epochs N > "
                        f"{payload['epoch']}, or start from its weights with --finetune")
    return cfg, payload, source


def run_dirs(cfg: TrainConfig, payload: Optional[dict], run_id: str) -> tuple[Path, Path]:
    if payload is not None and isinstance(payload.get("run_dir"), str):
        return Path(payload["run_dir"]), Path(payload["log_dir"])
    root = Path(cfg.trainer.save_dir)
    return root / "models" / cfg.exp_id / run_id, root / "log" / cfg.exp_id / run_id


def worker(local_rank: int, world_size: int, args, cfg: TrainConfig, payload: Optional[dict], run_id: str,
           device_type: str, launched: bool, source: str = "project") -> dict:
    """One training process (rank = local_rank for single-machine spawns)."""
    if world_size > 1:
        if launched:
            rank = int(os.environ["RANK"])
        else:
            rank = local_rank
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, rank=rank, world_size=world_size)
        chosen = [run_id]
        dist.broadcast_object_list(chosen, src=0)  # every rank writes into rank 0's run folder
        run_id = chosen[0]
    else:
        rank = 0
    device = torch.device(f"cuda:{local_rank}") if device_type == "cuda" else torch.device("cpu")
    torch.manual_seed(cfg.seed + rank)
    if device_type == "cuda":
        torch.cuda.manual_seed_all(cfg.seed + rank)
    info = DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)
    train_set = build_dataset(cfg.data_set, "train")
    val_set = build_dataset(cfg.data_set, "val")
    run_dir, log_dir = run_dirs(cfg, payload, run_id)
    official = source == "official"
    trainer = IAFacesTrainer(cfg, train_set, val_set, run_dir, log_dir, device, info,
                             resume=None if official else payload, released=payload if official else None,
                             finetune=args.finetune)
    try:
        result = trainer.train()
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    if info.is_main:
        print(f"checkpoints: {run_dir}\nlogs: {log_dir}")
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg, payload, source = resolve_config(args)
        device = resolve_device(args.device)
    except ValueError as e:
        raise UserError(str(e)) from None
    run_id = args.run_id or datetime.datetime.now().strftime("%m%d_%H%M%S")
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:  # under torchrun
        world = int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", 0))
        worker(local, world, args, cfg, payload, run_id, device.type, launched=True, source=source)
        return 0
    n_gpu = torch.cuda.device_count() if device.type == "cuda" else 0
    if n_gpu > 1 and device.index is None:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        torch.multiprocessing.spawn(worker, args=(n_gpu, args, cfg, payload, run_id, "cuda", False, source),
                                    nprocs=n_gpu)
        return 0
    worker(device.index or 0, 1, args, cfg, payload, run_id, device.type, launched=False, source=source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
