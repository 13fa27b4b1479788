"""A one-minute look at a SynthFaces checkpoint, for short study runs (docs/study.md): held-out
reconstruction PSNR, and per transferred component the in-box error against the counterfactual
relative to doing nothing (the benchmark's target: <= 0.5) and the locality (MSE_irr over the
change inside the box; target <= 0.1).

    python -m evaluation.quick_probe saved/models/iafaces-synthfaces-64/default/latest.pth [--num 64]

The full judgement, with attributes, single eyes and every target, is ``evaluation.synth_benchmark``.
"""
from __future__ import annotations

import sys

import torch

from data_loader import synthfaces as sf
from data_loader.synthfaces.dataset import render_batch
from editing import Editor
from utils.cli import ArgumentParser, main_guard
from utils.errors import UserError

from .metrics import box_mask, masked_mse, mse, mse_irr, psnr
from .synth_benchmark import TRANSFER_COMPONENTS, held_out_ids, locality, synthfaces_setup


def probe(editor: Editor, num: int = 64) -> dict:
    """{"psnr": dB, "transfer": {component: {"ratio", "locality"}}} on the first ``num`` test faces."""
    setup = synthfaces_setup(editor.config)
    factors = [sf.sample_factors(setup["seed"], i) for i in held_out_ids(setup, num)]
    x = render_batch(factors, editor.size)
    content, z = editor.encode(x)
    recon = editor.decode(content, z)
    out = {"psnr": psnr(x, recon, "mean", minmax=False), "mse": mse(x, recon), "transfer": {}}
    ref = [(k + 1) % num for k in range(num)]
    for comp in TRANSFER_COMPONENTS:
        gt = render_batch([sf.transfer(factors[k], factors[ref[k]], comp) for k in range(num)], editor.size)
        edited = editor.decode(content, Editor.transfer(z, z[ref], comp))
        m = box_mask(editor.size, comp).float()
        out["transfer"][comp] = {
            "ratio": masked_mse(edited, gt, m) / max(masked_mse(recon, gt, m), 1e-12),
            "locality": locality(mse_irr(recon, edited, comp), masked_mse(edited, recon, m))}
    return out


@main_guard
def main(argv=None) -> int:
    p = ArgumentParser(description="Quick look at a SynthFaces checkpoint: PSNR, transfer ratio, locality.")
    p.add_argument("checkpoint")
    p.add_argument("--num", type=int, default=64, help="held-out faces (default 64)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if args.num < 2:
        raise UserError("--num must be at least 2")
    r = probe(Editor.from_checkpoint(args.checkpoint, args.device, 32), args.num)
    print(f"{args.checkpoint}: PSNR {r['psnr']:.2f} dB")
    for comp, v in r["transfer"].items():
        print(f"  {comp:6s} in-box error / no edit {v['ratio']:.2f}   locality {v['locality']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
