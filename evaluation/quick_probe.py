"""A one-minute look at a SynthFaces checkpoint, for short study runs (docs/study.md): held-out
reconstruction PSNR, and per transferred component the in-box error against the counterfactual
relative to doing nothing (the benchmark's target: <= 0.5) and the locality (MSE_irr over the
change inside the box; target <= 0.1).

    python -m evaluation.quick_probe saved/models/iafaces-synthfaces-64/default/latest.pth [--num 64]

The full judgement, with attributes, single eyes and every target, is ``evaluation.synth_benchmark``.
"""
from __future__ import annotations

import sys

from data_loader import synthfaces as sf
from data_loader.synthfaces.dataset import render_batch
from editing import Editor
from model.boxes import boxes_at, component_indices
from model.variants.rings import ring_means
from utils.cli import ArgumentParser, main_guard
from utils.errors import UserError

from .metrics import box_mask, masked_mse, mse, mse_irr, psnr
from .synth_benchmark import TRANSFER_COMPONENTS, held_out_ids, locality, synthfaces_setup


def probe(editor: Editor, num: int = 64) -> dict:
    """{"psnr": dB, "transfer": {component: {"ratio", "locality"}}} on the first ``num`` test faces."""
    setup = synthfaces_setup(editor.config)
    factors = [sf.sample_factors(setup["seed"], i) for i in held_out_ids(setup, num)]
    x = render_batch(factors, editor.size)
    content, components = editor.encode(x)
    recon = editor.decode(content, components)
    out = {"psnr": psnr(x, recon, "mean", minmax=False), "mse": mse(x, recon), "transfer": {}}
    ref = [(k + 1) % num for k in range(num)]
    for comp in TRANSFER_COMPONENTS:
        gt = render_batch([sf.transfer(factors[k], factors[ref[k]], comp) for k in range(num)], editor.size)
        edited = editor.decode(content, Editor.transfer(components, components[ref], comp))
        m = box_mask(editor.size, comp).float()
        out["transfer"][comp] = {
            "ratio": masked_mse(edited, gt, m) / max(masked_mse(recon, gt, m), 1e-12),
            "locality": locality(mse_irr(recon, edited, comp), masked_mse(edited, recon, m))}
    return out


def copy_bound(size: int = 64, num: int = 64, seed: int = 0) -> dict:
    """The in-box error / no edit that a pixel copy would reach: each transferred box takes the
    reference's *rendered* pixels, shifted by the difference of the two faces' ring colours (so
    a skin-colour change does not count against it). No model is involved; a ratio above 0.5
    means that even an exact copy of the reference's box cannot meet the transfer target,
    because the counterfactual keeps the target's overlays (glasses, hair, blush) in the box."""
    factors = [sf.sample_factors(seed, 10_000_000 + i) for i in range(num)]
    x = render_batch(factors, size)
    ref = [(k + 1) % num for k in range(num)]
    out = {}
    for comp in TRANSFER_COMPONENTS:
        gt = render_batch([sf.transfer(factors[k], factors[ref[k]], comp) for k in range(num)], size)
        copy = x.clone()
        for i in component_indices(comp):
            x0, y0, x1, y1 = boxes_at(size)[i]
            ring = ring_means(x, [(x0, y0, x1, y1)])[:, 0, :, None, None]
            copy[:, :, y0:y1, x0:x1] = x[ref][:, :, y0:y1, x0:x1] - ring[ref] + ring
        m = box_mask(size, comp).float()
        out[comp] = masked_mse(copy, gt, m) / max(masked_mse(x, gt, m), 1e-12)
    return out


@main_guard
def main(argv=None) -> int:
    p = ArgumentParser(description="Quick look at a SynthFaces checkpoint: PSNR, transfer ratio, locality.")
    p.add_argument("checkpoint", nargs="?", help="checkpoint to probe (not needed with --copy_bound)")
    p.add_argument("--num", type=int, default=64, help="held-out faces (default 64)")
    p.add_argument("--device", default="auto")
    p.add_argument("--copy_bound", type=int, metavar="SIZE", default=0,
                   help="no model: print the ratio a skin-corrected copy of the reference's box pixels reaches "
                        "at SIZE px (what the transfer target asks beyond copying)")
    args = p.parse_args(argv)
    if args.num < 2:
        raise UserError("--num must be at least 2")
    if args.copy_bound:
        for comp, v in copy_bound(args.copy_bound, args.num).items():
            print(f"  {comp:6s} copy of the reference's box: in-box error / no edit {v:.2f}")
        return 0
    if not args.checkpoint:
        raise UserError("give a checkpoint to probe, or --copy_bound SIZE")
    r = probe(Editor.from_checkpoint(args.checkpoint, args.device, 32), args.num)
    print(f"{args.checkpoint}: PSNR {r['psnr']:.2f} dB")
    for comp, v in r["transfer"].items():
        print(f"  {comp:6s} in-box error / no edit {v['ratio']:.2f}   locality {v['locality']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
