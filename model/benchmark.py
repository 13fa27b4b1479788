"""Time the encoder + generator forward pass: ``python -m model.benchmark --arch iafaces_256``."""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from model import ARCHITECTURES, build_model_config, build_networks
from utils.device import resolve_device
from utils.malloc import tune_malloc


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--arch", default="iafaces_256", choices=list(ARCHITECTURES))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = p.parse_args(argv)
    tune_malloc()  # as every command of the project does (utils.cli.main_guard)
    dev = resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    cfg = build_model_config(args.arch)
    E, G, _ = build_networks(cfg, discriminator=False)
    E, G = E.to(dev, dtype).eval(), G.to(dev, dtype).eval()
    x = torch.randn(args.batch, 3, cfg.encoder.size, cfg.encoder.size, device=dev, dtype=dtype)
    times = []
    with torch.no_grad():
        G(*E(x))  # warm-up
        for _ in range(args.repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            G(*E(x))
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    print(f"{args.arch} batch {args.batch} {args.dtype} on {dev} ({torch.get_num_threads()} threads): "
          f"median {statistics.median(times):.3f} s, min {min(times):.3f} s per forward (E + G)")


if __name__ == "__main__":
    main()
