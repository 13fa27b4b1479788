"""Edit heatmap, the release's ``vis_heatmap``: where an edit changes pixels.

    python -m evaluation.heatmap --recon output/ckpt/reconstruction --edit output/ckpt/attr_beard \
        [--list heatmap.txt] [--out heatmap.png] [--figure heatmap_fig.png]

The heatmap is the per-pixel mean of ``|edited - reconstruction|`` over the faces (pairs by file
stem, in the order of ``--list`` when given, e.g. the release's ``heatmap.txt``), averaged over the
three colour channels, min-max scaled to 0..255 (uint8) and colour-mapped with OpenCV's JET map
(blue: unchanged, red: changed most). ``--out`` gets the colour-mapped image at the images' size,
``--npy`` the raw mean difference (float, on the 0..255 pixel scale), ``--figure`` a matplotlib
figure with a colour bar. Bad input ends with one ``error: ...`` line and exit status 2.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from utils.cli import ArgumentParser, main_guard
from utils.errors import UserError


def mean_abs_difference(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per-pixel mean over the pairs of ``|edited - reconstruction|`` (uint8 or float ``[H, W, 3]``
    arrays, pixel scale 0..255), averaged over the channels -> float64 ``[H, W]``."""
    total, n = None, 0
    for recon, edit in pairs:
        recon, edit = np.asarray(recon, np.float64), np.asarray(edit, np.float64)
        if recon.shape != edit.shape:
            raise UserError(f"a reconstruction and its edit differ in size ({recon.shape} vs {edit.shape})")
        d = np.abs(edit - recon)
        d = d.mean(-1) if d.ndim == 3 else d
        if total is not None and total.shape != d.shape:
            raise UserError(f"the images differ in size ({total.shape} vs {d.shape}); pass --size N")
        total = d if total is None else total + d
        n += 1
    if not n:
        raise UserError("no image pairs to average")
    return total / n


def minmax_uint8(heat: np.ndarray) -> np.ndarray:
    """Min-max scale to 0..255 (uint8, rounded); a constant map becomes all zeros."""
    heat = np.asarray(heat, np.float64)
    lo, hi = float(heat.min()), float(heat.max())
    if hi <= lo:
        return np.zeros(heat.shape, np.uint8)
    return np.round((heat - lo) / (hi - lo) * 255.0).astype(np.uint8)


def colorize(heat: np.ndarray) -> np.ndarray:
    """The release's picture: min-max scaled to 0..255, OpenCV's COLORMAP_JET -> RGB uint8 [H, W, 3]."""
    import cv2
    return cv2.applyColorMap(minmax_uint8(heat), cv2.COLORMAP_JET)[:, :, ::-1].copy()


def save_figure(heat: np.ndarray, path: Path, title: str = "mean |edit - reconstruction|") -> None:
    """A matplotlib figure of the heatmap (jet colour map) with a colour bar, on the 0..255 scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(heat, cmap="jet")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def build_parser():
    p = ArgumentParser(description="Edit heatmap: per-pixel mean |edit - reconstruction| over faces, colour-mapped.")
    p.add_argument("--recon", required=True, metavar="DIR", help="source reconstructions (reconstruction.py)")
    p.add_argument("--edit", required=True, metavar="DIR", help="edited images with the same file stems")
    p.add_argument("--list", default=None, metavar="FILE", help="faces to use, one per line (e.g. heatmap.txt); "
                   "default: every pair")
    p.add_argument("--size", type=int, default=None, help="resize both to SIZE px first (OpenCV INTER_LINEAR)")
    p.add_argument("--out", default="heatmap.png", help="colour-mapped heatmap (default heatmap.png)")
    p.add_argument("--npy", default=None, help="also save the raw mean difference (0..255 scale) as .npy")
    p.add_argument("--figure", default=None, help="also save a matplotlib figure with a colour bar")
    return p


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from PIL import Image

    from utils.image_io import read_list_entries, read_rgb_array, resize_uint8

    from .compare import pair_files

    notice = lambda m: print(m, file=sys.stderr)  # noqa: E731
    order = read_list_entries(args.list) if args.list else None
    pairs = pair_files(args.recon, args.edit, notice, order)

    def load(path: Path) -> np.ndarray:
        a = read_rgb_array(path)
        return resize_uint8(a, args.size, "opencv") if args.size else a

    def arrays():
        for _, recon, edit in pairs:
            r, e = load(recon), load(edit)
            if r.shape != e.shape:  # reconstructions at another size: bring them to the edit's size
                r = resize_uint8(r, e.shape[0], "opencv")
            yield r, e

    heat = mean_abs_difference(arrays())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(colorize(heat)).save(out)
    if args.npy:
        np.save(args.npy, heat)
    if args.figure:
        save_figure(heat, Path(args.figure), f"mean |edit - reconstruction| over {len(pairs)} faces")
    print(f"heatmap of {len(pairs)} faces -> {out} (mean difference max {heat.max():.2f}, mean {heat.mean():.2f} "
          "on the 0..255 scale)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
