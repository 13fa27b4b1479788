"""Command line of SynthFaces.

    python -m data_loader.synthfaces --out DIR --num N [--start ID] [--size S] [--seed K] [--workers W] [--overwrite]
    python -m data_loader.synthfaces --benchmark [--bench-seconds T]
    python -m data_loader.synthfaces --contact-sheet docs/synthfaces.png

Bad input prints one line to stderr and exits with status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

from PIL import Image, ImageDraw, ImageFont

from .export import UsageError as _UsageError
from .export import export, export_splits  # noqa: F401  (re-exported)
from .factors import attributes, flip_attribute, sample_factors, transfer
from .render import render

PROG = "python -m data_loader.synthfaces"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, no usage dump
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="SynthFaces: procedural aligned faces with ground-truth factors.")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", metavar="DIR", help="export a data set in the CelebA-HQ layout into DIR")
    mode.add_argument("--benchmark", action="store_true", help="print single-core images/s at 64 and 256 px")
    mode.add_argument("--contact-sheet", metavar="PNG", help="write a contact sheet of samples and counterfactuals")
    p.add_argument("--num", type=int, default=1000, help="number of images to export (default 1000)")
    p.add_argument("--start", type=int, default=0, help="first face id (default 0; a default-config model trained "
                   "on ids 0-11999, its test faces start at 12500)")
    p.add_argument("--size", type=int, default=256, help="image size, a power of two in 32..1024 (default 256)")
    p.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="export processes (default 1)")
    p.add_argument("--overwrite", action="store_true", help="export into a non-empty --out folder, replacing its "
                   "data set files (default: refused)")
    p.add_argument("--bench-seconds", type=float, default=3.0, help="seconds per benchmark size (default 3)")
    return p


def _check_args(a) -> None:
    if a.size < 32 or a.size > 1024 or a.size & (a.size - 1):
        raise _UsageError(f"--size must be a power of two between 32 and 1024, got {a.size}")
    if a.num <= 0:
        raise _UsageError(f"--num must be positive, got {a.num}")
    if a.start < 0:
        raise _UsageError(f"--start must be >= 0, got {a.start}")
    if a.seed < 0:
        raise _UsageError(f"--seed must be non-negative, got {a.seed}")
    if a.workers < 1:
        raise _UsageError(f"--workers must be at least 1, got {a.workers}")
    if not a.bench_seconds > 0:
        raise _UsageError(f"--bench-seconds must be positive, got {a.bench_seconds}")


# ----------------------------------------------------------------------------------------------
# Benchmark
# ----------------------------------------------------------------------------------------------
def benchmark(seconds: float = 3.0, sizes: Sequence[int] = (64, 256)) -> dict[int, float]:
    """Images/s (sampling + rendering) on one core: the process is pinned to one CPU and thread
    pools are limited to one thread."""
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    try:
        from threadpoolctl import threadpool_limits  # optional: present only with some NumPy/BLAS installs

        threadpool_limits(1)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    result = {}
    for size in sizes:
        render(sample_factors(1, 0), size)  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            render(sample_factors(1, n), size)
            n += 1
        result[size] = n / (time.perf_counter() - t0)
    return result


# ----------------------------------------------------------------------------------------------
# Contact sheet
# ----------------------------------------------------------------------------------------------
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow
        return ImageFont.load_default()


def contact_sheet(path: str, seed: int = 0, tile: int = 128) -> None:
    """Samples (4x8 at ``tile`` px), the same faces rendered at 64 px (upscaled), and rows of
    counterfactuals: original | reference | mouth/eyes/nose transferred | three attribute flips."""
    cols, pad, head = 8, 4, 26
    font, small = _font(16), _font(12)
    W = cols * tile + (cols + 1) * pad

    def grid_rows(images, labels=None):
        rows = []
        for r in range(0, len(images), cols):
            row = Image.new("RGB", (W, tile + pad), "white")
            for c, im in enumerate(images[r:r + cols]):
                tile_im = Image.fromarray(im)
                if tile_im.size[0] != tile:
                    tile_im = tile_im.resize((tile, tile), Image.NEAREST)
                x = pad + c * (tile + pad)
                row.paste(tile_im, (x, pad))
                if labels is not None and labels[r + c]:
                    d = ImageDraw.Draw(row)
                    txt = labels[r + c]
                    tw = d.textlength(txt, font=small)
                    d.rectangle([x, pad + tile - 16, x + tw + 6, pad + tile], fill=(0, 0, 0))
                    d.text((x + 3, pad + tile - 15), txt, fill=(255, 255, 255), font=small)
            rows.append(row)
        return rows

    def header(text, col_labels=None):
        h = Image.new("RGB", (W, head + (18 if col_labels else 0)), "white")
        d = ImageDraw.Draw(h)
        d.text((pad, 4), text, fill=(0, 0, 0), font=font)
        if col_labels:
            for c, t in enumerate(col_labels):
                d.text((pad + c * (tile + pad) + 2, head), t, fill=(60, 60, 60), font=small)
        return h

    parts = [header(f"SynthFaces samples (seed {seed}, {tile} px)")]
    ids = list(range(32))
    parts += grid_rows([render(sample_factors(seed, i), tile) for i in ids])
    parts.append(header("the first 8 faces rendered at 64 px (nearest-neighbour upscaled)"))
    parts += grid_rows([render(sample_factors(seed, i), 64) for i in ids[:8]])
    flips = [("Smiling", "Mouth_Slightly_Open", "Left_Eye_Closed"),
             ("No_Beard", "Eyeglasses", "Bushy_Eyebrows"),
             ("Big_Nose", "Narrow_Eyes", "Big_Lips"),
             ("Mustache", "Arched_Eyebrows", "Bags_Under_Eyes"),
             ("Pointy_Nose", "Right_Eye_Closed", "Male")]
    parts.append(header("counterfactual ground truth (rendered from modified factors)",
                        ["original", "reference", "mouth <- ref", "eyes <- ref", "nose <- ref",
                         "attribute flip", "attribute flip", "attribute flip"]))
    pairs = [(1, 6), (2, 5), (9, 14), (4, 12), (20, 23)]
    for (a, b), names in zip(pairs, flips):
        fa, fb = sample_factors(seed, a), sample_factors(seed, b)
        ims = [render(fa, tile), render(fb, tile), render(transfer(fa, fb, "mouth"), tile),
               render(transfer(fa, fb, "eyes"), tile), render(transfer(fa, fb, "nose"), tile)]
        labels = ["", "", "", "", ""]
        cur = attributes(fa)
        for n in names:
            ims.append(render(flip_attribute(fa, n, not cur[n]), tile))
            labels.append(("+" if not cur[n] else "-") + n)
        parts += grid_rows(ims, labels)
    H = sum(p.size[1] for p in parts) + pad
    sheet = Image.new("RGB", (W, H), "white")
    y = 0
    for p in parts:
        sheet.paste(p, (0, y))
        y += p.size[1]
    d = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(d, exist_ok=True)
        sheet.save(path)
    except (OSError, ValueError) as e:
        raise _UsageError(f"cannot write contact sheet '{path}': {getattr(e, 'strerror', None) or e}") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        a = _parser().parse_args(argv)
        _check_args(a)
        if a.benchmark:
            res = benchmark(a.bench_seconds)
            for size, ips in res.items():
                print(f"{size:5d} px: {ips:8.1f} images/s (one core, sampling + rendering)")
        elif a.contact_sheet:
            contact_sheet(a.contact_sheet, seed=a.seed)
            print(f"wrote {a.contact_sheet}")
        else:
            export(a.out, a.num, a.size, a.seed, a.workers, overwrite=a.overwrite, start=a.start)
            print(f"wrote {a.num} images of {a.size} px to {a.out}")
    except _UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
