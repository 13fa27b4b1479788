"""Train IA-FaceS from a JSON config.

    python train.py -c configs/synthfaces.json
    python train.py -r saved/models/<exp_id>/<run>/latest.pth          # exact resume (in place)
    python train.py -r saved/models/<exp_id>/<run>/checkpoint-epoch20.pth --fork   # go on from an older one
    python train.py -r iafaces-celebahq.pth --epochs 220                 # continue a released checkpoint
    python train.py -r iafaces-celebahq.pth --finetune -c my_config.json # fine-tune a released checkpoint
    torchrun --nproc_per_node 4 train.py -c configs/iafaces-celebahq-256.json

A plain run uses every visible GPU (one process each; CUDA_VISIBLE_DEVICES narrows it); under
torchrun it uses the processes torchrun started. Batch size is per process.

Everything is written under the save dir (``--save_dir`` or the config's ``trainer.save_dir``):
``models/<exp_id>/<run_id>/`` and ``log/<exp_id>/<run_id>/``, with exp id and run id plain folder
names. A resume continues in place when the checkpoint lies in the run folder that the save dir,
its exp id and its run id name; any other copy starts a new run folder. A resume never moves a run
backwards: a checkpoint older than the run folder's newest (by stored iteration) continues only
with ``--fork`` (into a new run folder, the run untouched) or ``--overwrite`` (rolled back in
place; the newer checkpoints stay as ``<name>.rolled-back-it<N>.pth``). A new run refuses a run
folder that holds checkpoints (``--overwrite`` replaces them, ``-r`` continues them), and a lock
file keeps a second process out of a run folder while one trains. A run that fails before
training starts leaves no folder behind that it created.
"""
from __future__ import annotations

import utils.omp  # noqa: F401  (first: OpenMP reads its wait policy when torch loads)

import datetime
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from data_loader.registry import build_dataset
from model.checkpoint import (check_model_sizes, check_project_payload, read_checkpoint, remove_stale_temporaries,
                              stored_model_config)
from trainer.base_trainer import DistInfo, run_checkpoints
from trainer.config import TrainConfig, check_plain_name, load_config, parse_config
from trainer.iafaces_trainer import IAFacesTrainer
from utils.cli import ArgumentParser, main_guard
from utils.device import process_group_backend, resolve_device, set_threads
from utils.errors import CheckpointError, ConfigError, UserError


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Train IA-FaceS (encoder, generator, discriminator).")
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
    p.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's, one per core, falling to one while another program holds a core; beside "
                   "another busy program, --threads 1 on 2 cores keeps more of the solo speed)")
    p.add_argument("--seed", type=int, help="random seed (default: config seed)")
    p.add_argument("--run_id", help="run folder name, a plain name (default: start time MMDD_HHMMSS, with _2, _3, "
                   "... when taken)")
    p.add_argument("--overwrite", action="store_true", help="start a new run in a run folder that already holds "
                   "checkpoints, deleting them (default: refused; -r continues a run); with -r CHECKPOINT older than "
                   "its run's newest: roll the run back to it in place, keeping the newer checkpoints as "
                   "<name>.rolled-back-it<N>.pth")
    p.add_argument("--fork", action="store_true", help="with -r: continue the checkpoint in a new run folder (a new "
                   "run id), leaving its run as it is (needed for a checkpoint older than its run's newest, unless "
                   "--overwrite)")
    return p


def resolve_config(args) -> tuple[TrainConfig, Optional[dict], str]:
    """(config, checkpoint payload or None, "project" | "official" | "")."""
    from model.checkpoint import model_config_from_official
    from trainer.released import config_from_release

    payload, source = None, ""
    if getattr(args, "fork", False) and not args.resume:
        raise UserError("--fork goes with -r CHECKPOINT (it continues the checkpoint in a new run folder)")
    if getattr(args, "fork", False) and args.overwrite:
        raise UserError("give --fork (a new run folder) or --overwrite (roll the run back in place), not both")
    if args.resume:
        payload, source = read_checkpoint(args.resume)
        if source == "project" and "optimizer_G" not in payload:
            raise UserError(f"{args.resume} holds no training state to resume (only checkpoints written by "
                            "train.py and released IA-FaceS checkpoints can be resumed); use it with the editing "
                            "scripts instead")
        if source == "project":
            check_training_payload(payload, args.resume)
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
    for note in getattr(cfg, "notes", []):
        print(f"notice: {note}", file=sys.stderr)
    if source == "project" and cfg.model_config().to_dict() != stored_model_config(payload, args.resume).to_dict():
        raise UserError(f"the model in {args.config} differs from the one in {args.resume}; resume without -c")
    if source == "official":
        theirs = model_config_from_official(payload["config"]).to_dict()
        ours = cfg.model_config().to_dict()
        for d in (theirs, ours):  # the CAM box placement is an option, not part of the weights' shapes
            d["generator"]["args"].pop("cam_placement", None)
            d["generator"]["args"].pop("train_noise", None)
        if theirs != ours:
            raise UserError(f"the model in {args.config} differs from the released one in {args.resume}")
    if payload is not None:  # sizes read from the file cannot allocate more than the file holds
        d_key = "discriminator" if source == "project" else "state_dict_D"
        keys = ("e_ema", "g_ema") + ((d_key,) if d_key in payload else ())
        check_model_sizes(cfg.model_config(), {k: payload[k] for k in keys}, args.resume)
    t, dl = cfg.trainer, cfg.data_loader
    for value, obj, name in ((args.bz, dl, "batch_size"), (args.epochs, t, "epochs"), (args.iters, t, "iters"),
                             (args.save_dir, t, "save_dir"), (args.seed, cfg, "seed")):
        if value is not None:
            setattr(obj, name, value)
    if dl.batch_size < 1 or (t.iters is not None and t.iters < 0) or t.epochs < 1:
        raise UserError("--bz and --epochs must be positive and --iters non-negative")
    if not 0 <= cfg.seed < 2 ** 32:
        raise UserError(f"--seed must be in [0, {2 ** 32 - 1}], got {cfg.seed}")
    if source == "official" and not args.finetune and isinstance(payload.get("epoch"), (int, float)) \
            and t.epochs <= payload["epoch"]:
        raise UserError(f"{args.resume} ends at epoch {payload['epoch']}; continue it with --epochs N > "
                        f"{payload['epoch']}, or start from its weights with --finetune")
    return cfg, payload, source


#: What an own-format training checkpoint must hold to resume: key -> (check, what it must be).
_TRAINING_KEYS = {
    "config": (lambda v: isinstance(v, dict), "an object"),
    "optimizer_G": (lambda v: isinstance(v, dict), "an optimizer state"),
    "iteration": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "epoch": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "rng_torch": (lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.uint8 and v.dim() == 1, "a RNG state"),
}


def check_training_payload(payload: dict, path: str) -> None:
    """CheckpointError unless an own-format checkpoint holds a complete training state."""
    check_project_payload(payload, path, discriminator=True)
    if ("discriminator" in payload) != ("optimizer_D" in payload):
        raise CheckpointError(f"{path}: the checkpoint holds a discriminator without its optimizer state (or the "
                              "reverse), so it cannot be resumed; the file is damaged or not written by train.py")
    if "optimizer_D" in payload and not isinstance(payload["optimizer_D"], dict):
        raise CheckpointError(f"{path}: 'optimizer_D' must be an optimizer state to resume; the file is damaged or "
                              "not written by train.py")
    for key in ("encoder", "generator") + (("discriminator",) if "discriminator" in payload else ()):
        if key not in payload:
            raise CheckpointError(f"{path}: the checkpoint has no '{key}' weights, so it cannot be resumed")
        check_project_payload({"model_config": {}, "e_ema": payload[key], "g_ema": {}}, path)
    for key, (ok, what) in _TRAINING_KEYS.items():
        if key not in payload or not ok(payload[key]):
            raise CheckpointError(f"{path}: '{key}' must be {what} to resume; the file is damaged or not written "
                                  "by train.py")


def run_dirs(cfg: TrainConfig, run_id: str) -> tuple[Path, Path]:
    """(models folder, log folder) of run ``run_id``: under the save dir, named by exp id and run id."""
    root = Path(cfg.trainer.save_dir)
    return (root / "models" / check_plain_name(cfg.exp_id, "exp_id") / check_plain_name(run_id, "run id"),
            root / "log" / cfg.exp_id / run_id)


def stored_run_id(payload: dict, path: str) -> Optional[str]:
    """The run id an own-format checkpoint records (older files: the name of their stored run
    folder), validated as a plain name; None when it records none."""
    value = payload.get("run_id")
    if value is None and isinstance(payload.get("run_dir"), str):
        value = Path(payload["run_dir"]).name
    if value is None:
        return None
    try:
        return check_plain_name(value, "run id")
    except ConfigError as e:
        raise CheckpointError(f"{path}: its stored {e}") from None


def _taken(cfg: TrainConfig, run_id: str) -> bool:
    return any(p.exists() for p in run_dirs(cfg, run_id))


def plan_run(args, cfg: TrainConfig, payload: Optional[dict], source: str) -> tuple[str, bool]:
    """(run id, continues in place). A resume continues in place when the checkpoint lies in the
    run folder its stored run id names under the save dir (and ``--run_id`` is absent or the
    same); every other run gets a new run id: ``--run_id`` or the start time (``_2``, ``_3``, ...
    when taken)."""
    root = Path(cfg.trainer.save_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"the save dir {root} is a file; give a folder with --save_dir")
    check_plain_name(cfg.exp_id, "exp_id")
    if args.run_id is not None:
        check_plain_name(args.run_id, "--run_id")
    if source == "project" and not getattr(args, "fork", False):
        stored = stored_run_id(payload, args.resume)
        if stored is not None and args.run_id in (None, stored):
            here = run_dirs(cfg, stored)[0]
            if here.resolve() == Path(args.resume).resolve().parent:
                return stored, True
    if args.run_id is not None:
        return args.run_id, False
    base = datetime.datetime.now().strftime("%m%d_%H%M%S")
    for k in range(1, 10000):
        run_id = base if k == 1 else f"{base}_{k}"
        if _taken(cfg, run_id):
            continue
        try:  # reserve it: a second process starting in the same second takes the next id
            run_dirs(cfg, run_id)[0].mkdir(parents=True, exist_ok=False)
            return run_id, False
        except FileExistsError:
            continue
    raise UserError(f"no free run id {base}_N under {root}; give one with --run_id")


@contextmanager
def run_lock(run_dir: Path):
    """Hold ``run_dir/.lock`` (an exclusive ``flock``, released when the process ends, even by a
    kill) while training; a second process gets a UserError."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    fh = open(path, "a+")
    try:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: no lock
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise UserError(f"another process is training in {run_dir} (it holds {path}); wait for it to finish "
                                "or choose another --run_id") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield path
    finally:
        fh.close()


def rolled_back_name(path: Path, iteration: int) -> Path:
    """Where rolling a run back keeps ``path`` (a checkpoint at ``iteration``):
    ``<stem>.rolled-back-it<N>.pth``, with ``_2``, ``_3``, ... when taken (never overwritten)."""
    for k in range(1, 10000):
        name = f"{path.stem}.rolled-back-it{iteration}{'' if k == 1 else f'_{k}'}.pth"
        if not (path.parent / name).exists():
            return path.parent / name
    raise UserError(f"no free name to keep {path} under; move the *.rolled-back-it*.pth files away")


def prepare_run_dir(run_dir: Path, in_place: bool, overwrite: bool, resumed: Optional[tuple[Path, int]] = None
                    ) -> None:
    """With the run folder locked: remove temporary files of interrupted checkpoint writes; in a
    new run's folder refuse (or with ``overwrite`` delete) the checkpoints of an earlier run; when
    continuing in place from ``resumed`` (path, iteration), refuse to move the run backwards unless
    ``overwrite``, which keeps every newer checkpoint under :func:`rolled_back_name`."""
    for p in remove_stale_temporaries(run_dir):
        print(f"notice: removed {p}, left by an interrupted checkpoint write", file=sys.stderr)
    if in_place:
        if resumed is None:
            return
        path, iteration = Path(resumed[0]).resolve(), resumed[1]
        newer = [(it, p) for it, p in run_checkpoints(run_dir) if it > iteration and p.resolve() != path]
        if newer and not overwrite:
            it, newest = newer[0]
            raise UserError(f"{resumed[0]} is at iteration {iteration}, but its run folder holds a newer checkpoint, "
                            f"{newest} (iteration {it}); continue the run with -r {newest}, or go on from this one "
                            "with --fork (a new run folder; this run stays as it is) or --overwrite (roll the run "
                            "back; the newer checkpoints are kept as <name>.rolled-back-it<N>.pth)")
        for it, p in newer:
            kept = rolled_back_name(p, it)
            os.rename(p, kept)
            print(f"notice: rolled the run back to iteration {iteration}: {p.name} (iteration {it}) is kept as "
                  f"{kept.name}", file=sys.stderr)
        return
    old = sorted(p for p in run_dir.glob("*.pth") if p.is_file())
    if old and not overwrite:
        found = run_checkpoints(run_dir)
        newest = found[0][1] if found else old[0]
        raise UserError(f"the run folder {run_dir} already holds checkpoints ({newest.name}"
                        f"{', ...' if len(old) > 1 else ''}); continue it with -r {newest}, replace it with "
                        "--overwrite, or choose another --run_id")
    for p in old:
        p.unlink()


def _start_folders(cfg: TrainConfig) -> list[Path]:
    """The folders above every run folder of ``cfg``: the save dir, models/ and log/ and their exp id folders."""
    root = Path(cfg.trainer.save_dir)
    return [root / "models" / cfg.exp_id, root / "models", root / "log" / cfg.exp_id, root / "log", root]


def remove_unused_folders(created: list[Path], log_dir: Path) -> None:
    """After a run failed before training started (its log folder is absent or empty): remove the
    folders in ``created`` (deepest first) that hold nothing but the run's ``.lock``."""
    try:
        if log_dir.is_dir() and any(log_dir.iterdir()):
            return  # training started: what it wrote stays
    except OSError:
        return
    for folder in created:
        try:
            entries = list(folder.iterdir())
            if all(e.name == ".lock" and e.is_file() and not e.is_symlink() for e in entries):
                for e in entries:
                    e.unlink()
                folder.rmdir()
        except OSError:  # gone, not empty, or taken by another process meanwhile: leave it
            pass


def worker(local_rank: int, world_size: int, args, cfg: TrainConfig, payload: Optional[dict], run_id: str,
           device_type: str, launched: bool, source: str = "project") -> dict:
    """One training process (rank = local_rank for single-machine spawns)."""
    if device_type == "cuda":  # this process's GPU is the current one (NCCL and CUDA calls without a device use it)
        torch.cuda.set_device(local_rank)
    if world_size > 1:
        if launched:
            rank = int(os.environ["RANK"])
        else:
            rank = local_rank
        dist.init_process_group(process_group_backend(device_type), rank=rank, world_size=world_size)
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
    run_dir, log_dir = run_dirs(cfg, run_id)
    official = source == "official"
    trainer = IAFacesTrainer(cfg, train_set, val_set, run_dir, log_dir, device, info,
                             resume=None if official else payload, released=payload if official else None,
                             finetune=args.finetune)
    if args.resume:
        trainer.resumed_from = Path(args.resume)
    trainer.adapt_threads = device_type == "cpu" and world_size == 1 and args.threads is None
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
        set_threads(args.threads)
        device = resolve_device(args.device)
    except ValueError as e:
        raise UserError(str(e)) from None
    launched = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1  # under torchrun
    if launched and int(os.environ.get("RANK", 0)) != 0:  # rank 0 plans the run and broadcasts its id
        run_id = "pending"  # replaced by rank 0's in worker()
        worker(int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]), args, cfg, payload, run_id,
               device.type, launched=True, source=source)
        return 0
    above = [p for p in _start_folders(cfg) if not p.exists()]
    run_id, in_place = plan_run(args, cfg, payload, source)
    run_dir, log_dir = run_dirs(cfg, run_id)
    reserved = not in_place and args.run_id is None  # plan_run made the run folder
    created = [p for p in (run_dir, log_dir) if reserved and p == run_dir or not p.exists()]
    created = sorted(created + above, key=lambda p: -len(p.parts))
    resumed = (Path(args.resume), int(payload["iteration"])) if in_place else None
    with run_lock(run_dir):
        try:
            prepare_run_dir(run_dir, in_place, args.overwrite, resumed)
            return _dispatch(args, cfg, payload, run_id, device, source, launched)
        except BaseException:
            remove_unused_folders(created, log_dir)
            raise


def _dispatch(args, cfg, payload, run_id, device, source, launched) -> int:
    if launched:
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
