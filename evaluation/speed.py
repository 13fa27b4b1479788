"""Where the time goes: measured peaks of this machine, then the default training step and the
encoder + generator forward pass (``--arch``, default the official 256 px, ``--batch``, default 2)
in float32 and in bf16 + channels-last, as iterations/s, GFLOP/s and the share of the measured
peaks. :func:`timed` is the project's timing helper.

    python -m evaluation.speed                      # peaks, default training step, 256-px forward
    python -m evaluation.speed --parts train256     # one training step of the official 256-px config
    python -m evaluation.speed --device cuda --json speed.json
    python -m evaluation.speed --parts forward --arch iafaces_1024 --batch 1   # another forward pass

FLOPs are counted by ``torch.utils.flop_counter`` (convolutions and matrix products, forward and
backward); the peaks are large convolutions and matrix products timed in each precision.
"""
from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from data_loader.registry import build_dataset
from model import ARCHITECTURES, build_model_config, build_networks
from trainer.config import parse_config, read_config_data
from trainer.iafaces_trainer import IAFacesTrainer
from utils.cli import ArgumentParser, main_guard
from utils.device import resolve_device
from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("peaks", "train", "forward", "train256")
DEFAULT_PARTS = ("peaks", "train", "forward")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn: Callable[[], object], dev: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs (CUDA synchronised
    around each run)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(dev)
        t = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _autocast(dev: torch.device, bf16: bool):
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def measure_peaks(dev: torch.device, repeats: int) -> dict:
    """GFLOP/s of a 3x3 convolution (256 -> 256 channels, 32x32, batch 16) and a 2048^3 matrix
    product, in float32 and bf16."""
    out = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        x = torch.randn(16, 256, 32, 32, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(256, 256, 3, 3, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)
        conv_flops = 2 * 16 * 256 * 32 * 32 * 256 * 9
        t = timed(lambda: F.conv2d(x, w, padding=1), dev, repeats)
        a = torch.randn(2048, 2048, device=dev, dtype=dtype)
        mm = timed(lambda: a @ a, dev, repeats)
        out[name] = {"conv_gflops": conv_flops / t / 1e9, "matmul_gflops": 2 * 2048 ** 3 / mm / 1e9}
        out[name]["peak_gflops"] = max(out[name]["conv_gflops"], out[name]["matmul_gflops"])
    return out


def _share(gflops: float, peaks: Optional[dict], precision: str) -> Optional[float]:
    return gflops / peaks[precision]["peak_gflops"] if peaks else None


def measure_training(config: Path, dev: torch.device, steps: int, overrides: Optional[dict] = None,
                     synthetic_data: bool = False) -> dict:
    """Seconds per training step (median of ``steps`` after two warm-up steps) and GFLOP per step of
    ``config`` (trainer block ``overrides`` applied). ``synthetic_data``: train on SynthFaces at the
    model's size instead of the config's data set (the official configs need CelebA-HQ / FFHQ)."""
    data = read_config_data(config)
    if synthetic_data:
        size = data["encoder"]["args"].get("size") or build_model_config(data["model_arch"]).encoder.size
        data["data_set"] = {"type": "SynthFaces", "args": {"size": size, "num_train": 64, "num_val": 8,
                                                           "num_test": 8}}
    cfg = parse_config(data, str(config))
    for k, v in (overrides or {}).items():
        setattr(cfg.trainer, k, v)
    if cfg.loss.p_loss_weight > 0:
        cfg.loss.lpips_backbone = "random"  # the same FLOPs as VGG16 without its weight file
    with tempfile.TemporaryDirectory() as tmp:
        tr = IAFacesTrainer(cfg, build_dataset(cfg.data_set, "train"), build_dataset(cfg.data_set, "val"),
                            Path(tmp) / "run", Path(tmp) / "log", dev)
        batches = iter(tr.epoch_batches(0, 0))
        batch = next(batches)
        # A step past gan_start, where the discriminator runs too (the costlier kind of step), and
        # not a lazy-R1 step (1 in d_reg_every; the FLOP counter cannot follow its double backward).
        tr.iteration = max(getattr(cfg.loss, "gan_start", 0), 1)
        if (tr.iteration + 1) % cfg.loss.d_reg_every == 0:
            tr.iteration += 1

        def step():
            tr.train_step(batch)

        flops = count_flops(step)
        t = timed(step, dev, steps, warmup=2)
    gflop = flops / 1e9
    return {"config": str(config), "batch": cfg.data_loader.batch_size, "amp": cfg.trainer.amp,
            "channels_last": cfg.trainer.channels_last, "seconds": t, "it_per_s": 1 / t, "gflop": gflop,
            "gflops": gflop / t}


def measure_forward(arch: str, dev: torch.device, batch: int, repeats: int, bf16: bool) -> dict:
    """Encoder + generator forward of ``arch`` at batch ``batch`` (random weights)."""
    cfg = build_model_config(arch)
    E, G, _ = build_networks(cfg, discriminator=False)
    E, G = E.to(dev).eval(), G.to(dev).eval()
    x = torch.randn(batch, 3, cfg.encoder.size, cfg.encoder.size, device=dev)
    if bf16:
        E.to(memory_format=torch.channels_last)
        G.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def fwd():
        with _autocast(dev, bf16):
            return G(*E(x), noise_mode="const")

    flops = count_flops(fwd)
    t = timed(fwd, dev, repeats)
    return {"arch": arch, "batch": batch, "precision": "bf16" if bf16 else "fp32", "seconds": t,
            "gflop": flops / 1e9, "gflops": flops / 1e9 / t}


def report(res: dict) -> str:
    lines = [f"device {res['device']}, {res['threads']} CPU threads, torch {torch.__version__}"]
    peaks = res.get("peaks")
    if peaks:
        for p, v in peaks.items():
            lines.append(f"peak {p}: conv {v['conv_gflops']:.0f} GFLOP/s, matmul {v['matmul_gflops']:.0f} GFLOP/s")
    for key in ("train", "train256"):
        for row in res.get(key, []):
            prec = "bf16" if row["amp"] == "bf16" else "fp32"
            share = _share(row["gflops"], peaks, prec)
            lines.append(f"{key} {Path(row['config']).name} batch {row['batch']} ({prec}"
                         f"{', channels-last' if row['channels_last'] else ''}): {row['seconds']:.3f} s/step, "
                         f"{row['it_per_s']:.2f} it/s, {row['gflop']:.1f} GFLOP/step, {row['gflops']:.0f} GFLOP/s"
                         + (f" ({share:.0%} of the {prec} peak)" if share else ""))
    for row in res.get("forward", []):
        share = _share(row["gflops"], peaks, row["precision"])
        lines.append(f"forward {row['arch']} batch {row['batch']} ({row['precision']}): {row['seconds']:.3f} s, "
                     f"{row['gflop']:.1f} GFLOP, {row['gflops']:.0f} GFLOP/s"
                     + (f" ({share:.0%} of the {row['precision']} peak)" if share else ""))
    return "\n".join(lines)


@main_guard
def main(argv=None) -> int:
    p = ArgumentParser(description="Measured peaks, training-step and forward speed (fp32 and bf16).")
    p.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                   help=f"comma-separated subset of {', '.join(PARTS)} (default: {','.join(DEFAULT_PARTS)})")
    p.add_argument("--config", default=str(ROOT / "configs" / "synthfaces.json"), help="training config to time")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--steps", type=int, default=5, help="timed training steps (default 5)")
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes (default 3)")
    p.add_argument("--arch", default="iafaces_256", choices=list(ARCHITECTURES),
                   help="architecture of the forward part (default iafaces_256)")
    p.add_argument("--batch", type=int, default=2, help="batch size of the forward part (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the numbers as JSON")
    args = p.parse_args(argv)
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise UserError(f"unknown part(s) {', '.join(unknown)}; valid: {', '.join(PARTS)}")
    if args.steps < 1 or args.repeats < 1 or args.batch < 1:
        raise UserError("--steps, --repeats and --batch must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    res: dict = {"device": str(dev), "threads": torch.get_num_threads()}
    if "peaks" in parts:
        res["peaks"] = measure_peaks(dev, args.repeats)
    if "train" in parts:
        res["train"] = [measure_training(Path(args.config), dev, args.steps, {"amp": amp, "channels_last": cl})
                        for amp, cl in (("none", False), ("bf16", True))]
    if "forward" in parts:
        res["forward"] = [measure_forward(args.arch, dev, args.batch, args.repeats, bf16) for bf16 in (False, True)]
    if "train256" in parts:
        official = ROOT / "configs" / "iafaces-celebahq-256.json"
        res["train256"] = [measure_training(official, dev, max(1, args.steps // 2),
                                            {"amp": amp, "channels_last": cl}, synthetic_data=True) for amp, cl in
                           (("none", False), ("bf16", True))]
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
