"""Where the time goes: measured peaks of this machine, training steps (images/s and MFU), the
encoder + generator forward pass and the editing latency, each in float32 and, where the device
computes bf16 natively, in bf16 + channels-last. :func:`timed` is the project's timing helper.

    python -m evaluation.speed                      # peaks, default training step, 256-px forward
    python -m evaluation.speed --device cuda --all  # every part below (a lent GPU: a few minutes)
    python -m evaluation.speed --device cpu --quick         # default parts once each: seconds
    python -m evaluation.speed --device cpu --quick --all   # every row once: ~1 min on 2 idle CPU cores
    python -m evaluation.speed --parts train256,edit --json speed.json

Parts (``--parts``, or ``--all``):

- ``peaks``: large convolutions and matrix products timed in fp32 and bf16; on a GPU of
  :data:`GPU_PEAKS` also its datasheet dense peaks.
- ``train``: one training step of ``--config`` (default ``configs/synthfaces.json``).
- ``train256``: one training step of each official 256-px config (:data:`OFFICIAL_256`).
- ``forward``: encoder + generator forward of ``--arch`` at ``--batch``.
- ``edit``: editing latency at 256 px (:data:`EDIT_ARCHS`): ``Editor.decode`` of one face after
  ``apply_direction``, i.e. one slider move, and ``Editor.encode`` of one face.

A training step is D step, G step and EMA as configured, on one batch of SynthFaces faces at the
model's size (the official configs name CelebA-HQ; the images do not change a step's cost), LPIPS
with a random VGG16 (the same FLOPs). The lazy-R1 step (1 in ``d_reg_every``) is not timed: the
FLOP counter cannot follow its double backward. Images/s counts the batch's training images (the
counterfactual loss's swap pairs come on top; the time its step spends rendering them on the host
is shown beside it). FLOPs are counted by ``torch.utils.flop_counter`` (convolutions and matrix
products, forward and backward). MFU is the step's FLOPs per second over the peak of the precision
it computes in: the GPU's datasheet dense peak where :data:`GPU_PEAKS` knows the GPU (bf16; for
float32 the TF32 peak while cuDNN runs convolutions in TF32, PyTorch's default), else the measured
peak. ``--quick`` runs every row once at batch 1 (training steps timed under the FLOP counter, no
warm-up): a smoke test of the rows, not a measurement.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import re
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
from editing import Editor
from model import ARCHITECTURES, build_model_config, build_networks
from trainer.config import parse_config, read_config_data
from trainer.iafaces_trainer import IAFacesTrainer
from utils.cli import ArgumentParser, main_guard
from utils.device import native_bf16, resolve_device, set_threads
from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("peaks", "train", "train256", "forward", "edit")
DEFAULT_PARTS = ("peaks", "train", "forward")
#: The project's copies of the official 256-px training configs.
OFFICIAL_256 = (ROOT / "configs" / "iafaces-celebahq-256.json", ROOT / "configs" / "iafaces_cam-celebahq-256.json")
#: The architectures whose editing latency is measured (the official 256-px models).
EDIT_ARCHS = ("iafaces_256", "iafaces_cam_256")
#: Datasheet dense peaks in TFLOP/s (NVIDIA data sheets; the sparse figures they headline are
#: twice these): a word of ``torch.cuda.get_device_name()`` (``A10`` is not ``A10G``) -> precision
#: -> peak, the more specific names first.
GPU_PEAKS = (
    ("H200 NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H200", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H100 NVL", {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    ("H100 PCIe", {"bf16": 756.5, "tf32": 378.0, "fp32": 51.2}),
    ("H100", {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.1, "tf32": 183.0, "fp32": 91.6}),
    ("A10", {"bf16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    ("L4", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}),
)


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


def precisions(dev: torch.device) -> list[bool]:
    """bf16 flags to measure: float32, and bf16 where ``dev`` computes it natively (elsewhere it
    is emulated, tens of times slower, and says nothing)."""
    return [False, True] if native_bf16(dev) else [False]


# ------------------------------------------------------------------------------------------- peaks
def datasheet_peaks(dev: torch.device) -> Optional[dict]:
    """``{"gpu": name, "bf16"/"tf32"/"fp32": TFLOP/s}`` for a GPU of :data:`GPU_PEAKS`, else None."""
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    for key, peaks in GPU_PEAKS:
        if re.search(rf"\b{re.escape(key)}\b", name):
            return {"gpu": name, **peaks}
    return None


def measure_peaks(dev: torch.device, repeats: int, quick: bool = False) -> dict:
    """GFLOP/s of a 3x3 convolution (256 -> 256 channels, channels-last) and a square matrix
    product, in float32 and (where native) bf16; sized for the device (smaller with ``quick``)."""
    big = dev.type == "cuda" and not quick
    batch, res, n = (64, 64, 8192) if big else (16, 32, 1024 if quick else 2048)
    out = {}
    for bf16 in precisions(dev):
        dtype = torch.bfloat16 if bf16 else torch.float32
        x = torch.randn(batch, 256, res, res, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(256, 256, 3, 3, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)
        t = timed(lambda: F.conv2d(x, w, padding=1), dev, repeats)
        a = torch.randn(n, n, device=dev, dtype=dtype)
        mm = timed(lambda: a @ a, dev, repeats)
        row = {"conv_gflops": 2 * batch * 256 * res * res * 256 * 9 / t / 1e9, "matmul_gflops": 2 * n ** 3 / mm / 1e9}
        row["peak_gflops"] = max(row["conv_gflops"], row["matmul_gflops"])
        out["bf16" if bf16 else "fp32"] = row
    return out


def peak_for(precision: str, res: dict) -> Optional[tuple[float, str]]:
    """(GFLOP/s, where it comes from) that an fp32 or bf16 row is measured against, or None."""
    sheet = res.get("datasheet")
    if sheet:
        key = "tf32" if precision == "fp32" and torch.backends.cudnn.allow_tf32 else precision
        return sheet[key] * 1e3, f"{sheet['gpu']} datasheet {key} dense"
    measured = (res.get("peaks") or {}).get(precision)
    return (measured["peak_gflops"], f"measured {precision} peak") if measured else None


# ---------------------------------------------------------------------------------------- training
def measure_training(config: Path, dev: torch.device, steps: int, overrides: Optional[dict] = None,
                     batch: Optional[int] = None, quick: bool = False) -> dict:
    """One training step of ``config`` (trainer block ``overrides`` applied, ``batch`` images):
    seconds (median of ``steps`` after two warm-up steps; ``quick``: the one counted step),
    images/s and GFLOP per step. The data set is SynthFaces at the model's size."""
    data = read_config_data(config)
    size = data.get("encoder", {}).get("args", {}).get("size") or build_model_config(data["model_arch"]).encoder.size
    data["data_set"] = {"type": "SynthFaces", "args": {"size": size, "seed": 0, "num_train": 64, "num_val": 8,
                                                       "num_test": 8}}
    cfg = parse_config(data, str(config))
    for k, v in (overrides or {}).items():
        setattr(cfg.trainer, k, v)
    cfg.data_loader.num_workers = 0  # one batch is drawn, once
    if batch is not None:
        cfg.data_loader.batch_size = batch
    if cfg.loss.p_loss_weight > 0:
        cfg.loss.lpips_backbone = "random"  # the same FLOPs as VGG16 without its weight file
    with tempfile.TemporaryDirectory() as tmp:
        tr = IAFacesTrainer(cfg, build_dataset(cfg.data_set, "train"), build_dataset(cfg.data_set, "val"),
                            Path(tmp) / "run", Path(tmp) / "log", dev)
        batch_data = next(iter(tr.epoch_batches(0, 0)))
        # A step past gan_start, where the discriminator runs too (the costlier kind of step), and
        # not a lazy-R1 step.
        tr.iteration = max(getattr(cfg.loss, "gan_start", 0), 1)
        if (tr.iteration + 1) % cfg.loss.d_reg_every == 0:
            tr.iteration += 1

        def step():
            tr.train_step(batch_data)

        if quick:
            _sync(dev)
            t0 = time.perf_counter()
            flops = count_flops(step)
            _sync(dev)
            t = time.perf_counter() - t0
        else:
            flops = count_flops(step)
            t = timed(step, dev, steps, warmup=2)
        swap = getattr(tr.loss, "swap", None)  # its faces are rendered on the host inside each step
        swap_s = timed(lambda: swap.batch(tr.iteration), dev, 1 if quick else 3, 0) if swap is not None else None
        precision = "bf16" if tr.amp else "fp32"
    n = cfg.data_loader.batch_size
    return {"config": str(config), "batch": n, "precision": precision, "channels_last": cfg.trainer.channels_last,
            "seconds": t, "images_per_s": n / t, "gflop": flops / 1e9, "gflops": flops / 1e9 / t,
            "swap_render_seconds": swap_s}


def training_rows(config: Path, dev: torch.device, steps: int, batch: Optional[int], quick: bool) -> list[dict]:
    """float32, and bf16 + channels-last where native, of one config."""
    return [measure_training(config, dev, steps, {"amp": "bf16" if bf16 else "none", "channels_last": bf16},
                             batch, quick) for bf16 in precisions(dev)]


# ----------------------------------------------------------------------------------- forward, edit
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


def measure_editing(arch: str, dev: torch.device, repeats: int, bf16: bool, warmup: int = 2) -> dict:
    """Editing latency of one face with ``arch`` (random weights) through :class:`Editor`:
    ``decode`` after ``apply_direction`` at a new strength each time (one slider move, the image
    back on the host) and ``encode`` (a new photo), median milliseconds."""
    cfg = build_model_config(arch)
    E, G, _ = build_networks(cfg, discriminator=False)
    ed = Editor(E.to(dev), G.to(dev), dev, batch_size=1, precision="bf16" if bf16 else "fp32")
    face = torch.rand(1, 3, cfg.encoder.size, cfg.encoder.size) * 2 - 1
    content, components = ed.encode(face)
    normals = F.normalize(torch.randn(components.shape[1:]), dim=1)  # [4, D]
    strengths = itertools.cycle([0.5 * k for k in range(-8, 9)])

    def slider_move():
        return ed.decode(content, ed.apply_direction(components, normals, next(strengths), "mouth"))

    decode = timed(slider_move, dev, repeats, warmup)
    encode = timed(lambda: ed.encode(face), dev, repeats, warmup)
    return {"arch": arch, "size": cfg.encoder.size, "precision": "bf16" if bf16 else "fp32",
            "decode_ms": decode * 1e3, "encode_ms": encode * 1e3}


# ------------------------------------------------------------------------------------------- report
def _mfu(row: dict, res: dict) -> str:
    peak = peak_for(row["precision"], res)
    return f"{row['gflops'] / peak[0]:.1%} of {peak[1]}" if peak else "n/a (no peak known)"


def report(res: dict) -> str:
    """The measurements as text: a header, the peaks, then one table row per measurement."""
    lines = [f"device {res['device']}{' (' + res['gpu'] + ')' if res.get('gpu') else ''}, {res['threads']} CPU "
             f"threads, torch {torch.__version__}"]
    for p, v in (res.get("peaks") or {}).items():
        lines.append(f"peak {p}: conv {v['conv_gflops']:.0f} GFLOP/s, matmul {v['matmul_gflops']:.0f} GFLOP/s")
    sheet = res.get("datasheet")
    if sheet:
        lines.append(f"datasheet dense peaks ({sheet['gpu']}): bf16 {sheet['bf16']:g}, tf32 {sheet['tf32']:g}, "
                     f"fp32 {sheet['fp32']:g} TFLOP/s")
    for note in res.get("notes", []):
        lines.append(f"note: {note}")
    lines += ["", "| part | what | precision | batch | time | images/s | GFLOP | GFLOP/s | MFU |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key in ("train", "train256"):
        for row in res.get(key, []):
            prec = row["precision"] + (", channels-last" if row["channels_last"] else "")
            swap = row.get("swap_render_seconds")
            what = f"{Path(row['config']).name} step" + (f" (of which {swap * 1e3:.0f} ms rendering the swap pairs "
                                                         "on the host)" if swap is not None else "")
            lines.append(f"| {key} | {what} | {prec} | {row['batch']} | "
                         f"{row['seconds'] * 1e3:.1f} ms | {row['images_per_s']:.1f} | {row['gflop']:.1f} | "
                         f"{row['gflops']:.0f} | {_mfu(row, res)} |")
    for row in res.get("forward", []):
        lines.append(f"| forward | {row['arch']} E+G | {row['precision']} | {row['batch']} | "
                     f"{row['seconds'] * 1e3:.1f} ms | {row['batch'] / row['seconds']:.1f} | {row['gflop']:.1f} | "
                     f"{row['gflops']:.0f} | {_mfu(row, res)} |")
    for row in res.get("edit", []):
        for what, key in (("decode per slider move", "decode_ms"), ("encode a face", "encode_ms")):
            lines.append(f"| edit | {row['arch']} {what} ({row['size']} px) | {row['precision']} | 1 | "
                         f"{row[key]:.1f} ms | {1e3 / row[key]:.1f} | | | |")
    return "\n".join(lines)


@main_guard
def main(argv=None) -> int:
    p = ArgumentParser(description="Measured peaks, training images/s and MFU, forward speed and editing latency "
                                   "(fp32, and bf16 where native).")
    p.add_argument("--parts", default=None,
                   help=f"comma-separated subset of {', '.join(PARTS)} (default: {','.join(DEFAULT_PARTS)})")
    p.add_argument("--all", action="store_true", help="every part (the preset for a lent GPU)")
    p.add_argument("--quick", action="store_true", help="every row once at batch 1, no warm-up: a smoke test "
                   "(with --all about a minute on 2 idle CPU cores, most of it two 256-px training steps; without, "
                   "seconds)")
    p.add_argument("--config", default=str(ROOT / "configs" / "synthfaces.json"), help="training config of the "
                   "train part (default configs/synthfaces.json)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--steps", type=int, default=None, help="timed training steps (default 5, 10 on a GPU)")
    p.add_argument("--repeats", type=int, default=None, help="timed forward passes and edits (default 3, 20 on a GPU)")
    p.add_argument("--arch", default="iafaces_256", choices=list(ARCHITECTURES),
                   help="architecture of the forward part (default iafaces_256)")
    p.add_argument("--batch", type=int, default=2, help="batch size of the forward part (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the numbers as JSON")
    args = p.parse_args(argv)
    if args.all and args.parts:
        raise UserError("give --all or --parts, not both")
    parts = list(PARTS) if args.all else [s.strip() for s in (args.parts or ",".join(DEFAULT_PARTS)).split(",")
                                          if s.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise UserError(f"unknown part(s) {', '.join(unknown)}; valid: {', '.join(PARTS)}")
    if (args.steps is not None and args.steps < 1) or (args.repeats is not None and args.repeats < 1) \
            or args.batch < 1:
        raise UserError("--steps, --repeats and --batch must be at least 1")
    set_threads(args.threads)
    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    steps = args.steps or (1 if args.quick else 10 if gpu else 5)
    repeats = args.repeats or (1 if args.quick else 20 if gpu else 3)
    train_batch, batch = (1, 1) if args.quick else (None, args.batch)
    res: dict = {"device": str(dev), "threads": torch.get_num_threads(), "quick": args.quick, "notes": []}
    if gpu:
        res["gpu"] = torch.cuda.get_device_name(dev)
        res["datasheet"] = datasheet_peaks(dev)
    if not native_bf16(dev):
        res["notes"].append(f"no bf16 rows: {dev.type} computes bf16 only by emulation here")
    if args.quick:
        res["notes"].append("--quick: every row once at batch 1 without warm-up; a smoke test, not a measurement")
    if "peaks" in parts:
        res["peaks"] = measure_peaks(dev, repeats, args.quick)
    if "train" in parts:
        res["train"] = training_rows(Path(args.config), dev, steps, train_batch, args.quick)
    if "train256" in parts:
        res["train256"] = [row for config in OFFICIAL_256
                           for row in training_rows(config, dev, steps, train_batch, args.quick)]
    if "forward" in parts:
        res["forward"] = [measure_forward(args.arch, dev, batch, repeats, bf16) for bf16 in precisions(dev)]
    if "edit" in parts:
        res["edit"] = [measure_editing(arch, dev, repeats, bf16, warmup=0 if args.quick else 2)
                       for arch in EDIT_ARCHS for bf16 in precisions(dev)]
    for key in ("train", "train256", "forward"):
        for row in res.get(key, []):
            peak = peak_for(row["precision"], res)
            row["mfu"], row["mfu_peak"] = (row["gflops"] / peak[0], peak[1]) if peak else (None, None)
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
