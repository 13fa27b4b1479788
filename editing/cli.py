"""Plumbing shared by the editing scripts (``reconstruction.py``, ``component_transfer.py``,
``attr_manipulation.py``): common flags, inputs, outputs, image batches and grids."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import torch
from PIL import Image
from torch import Tensor

from utils.errors import ImageError, UserError
from utils.image_io import make_grid, open_rgb, pil_to_tensor, resolve_inputs, save_image

from .editor import Editor


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", required=True, metavar="CKPT",
                   help="checkpoint: the project's own or a released IA-FaceS .pth")
    p.add_argument("--img_dir", default=None,
                   help="folder that the entries of .txt list files resolve against (default: the list's folder)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: output/<checkpoint stem>/<task>/)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--batch_size", type=int, default=8, help="images per forward pass (default: 8)")
    p.add_argument("--grid", action="store_true", help="also write side-by-side sheets DIR/grid_*.png")


def open_editor(args) -> Editor:
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    return Editor.from_checkpoint(args.resume, args.device, args.batch_size)


def output_dir(args, task: str) -> Path:
    out = Path(args.out) if args.out else Path("output") / Path(args.resume).stem / task
    out.mkdir(parents=True, exist_ok=True)
    return out


def collect_inputs(values: Sequence[str], img_dir: Optional[str], what: str) -> list[Path]:
    """Expand files / folders / list files; check they exist; at least one image."""
    paths = resolve_inputs(values, img_dir)
    if not paths:
        raise UserError(f"no images found for {what} in {', '.join(values)}")
    for p in paths:
        if not p.is_file():
            raise ImageError(f"image not found: {p}")
    return paths


def check_unique_stems(paths: Sequence[Path], what: str) -> None:
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen and seen[p.stem] != p:
            raise UserError(f"two {what} share the file stem '{p.stem}' ({seen[p.stem]}, {p}); outputs are "
                            "named by stem, so run them separately with different --out folders")
        seen[p.stem] = p


class ImageLoader:
    """Loads images as [B, 3, S, S] batches at the model size; non-RGB images are converted,
    other sizes are resized (with one notice line on stderr for the whole run)."""

    def __init__(self, size: int, notice: Callable[[str], None] = lambda m: print(m, file=sys.stderr)):
        self.size, self.notice, self.resized = size, notice, 0

    def load(self, path: Path) -> Tensor:
        im = open_rgb(path)
        if im.size != (self.size, self.size):
            if self.resized == 0:
                self.notice(f"notice: resizing inputs to the model's {self.size}x{self.size} px "
                            f"(first: {path.name}, {im.size[0]}x{im.size[1]})")
            self.resized += 1
            im = im.resize((self.size, self.size), Image.BICUBIC)
        return pil_to_tensor(im)

    def batch(self, paths: Sequence[Path]) -> Tensor:
        return torch.stack([self.load(p) for p in paths])


def batched(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class GridWriter:
    """Collects rows of images and writes them as sheets ``DIR/grid_NNN.png`` (``rows_per_sheet``
    rows each)."""

    def __init__(self, out_dir: Path, enabled: bool, rows_per_sheet: int = 16):
        self.out_dir, self.enabled, self.rows_per_sheet = out_dir, enabled, rows_per_sheet
        self.rows: list[list[Tensor]] = []
        self.written: list[Path] = []

    def add(self, row: Iterable[Tensor]) -> None:
        if not self.enabled:
            return
        self.rows.append([t.detach().cpu() for t in row])
        if len(self.rows) >= self.rows_per_sheet:
            self.flush()

    def flush(self) -> None:
        if self.enabled and self.rows:
            path = self.out_dir / f"grid_{len(self.written):03d}.png"
            save_image(make_grid(self.rows), path)
            self.written.append(path)
            self.rows = []


def parse_strengths(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--strengths must be comma-separated numbers, got '{text}' "
                        "(write --strengths=-2,0,2 when the first value is negative)") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise UserError(f"--strengths must be comma-separated finite numbers, got '{text}'")
    return vals


def strength_tag(value: float) -> str:
    """File-name tag of a strength: 2.5 -> ``s2.5``, -3.0 -> ``s-3``."""
    return f"s{value:g}"
