"""Image files in and out: RGB conversion, resizing, [-1, 1] tensors, list files and folders."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from utils.errors import ImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
PathLike = Union[str, os.PathLike]


def open_rgb(path: PathLike) -> Image.Image:
    """Open an image file as RGB (grayscale, palette and RGBA are converted; alpha is dropped
    over white). Raises ImageError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"cannot read image {path}: not an image or corrupt ({e.__class__.__name__}); "
                         "replace or remove the file") from None


def pil_to_tensor(im: Image.Image) -> Tensor:
    """PIL RGB -> float32 [3, H, W] in [-1, 1]."""
    a = np.asarray(im, dtype=np.float32)
    return torch.from_numpy(a).permute(2, 0, 1).contiguous() / 127.5 - 1.0


def load_image(path: PathLike, size: Optional[int] = None) -> Tensor:
    """Read an image as float32 [3, size, size] in [-1, 1] (bicubic resize when needed)."""
    im = open_rgb(path)
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BICUBIC)
    return pil_to_tensor(im)


def to_unit(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def tensor_to_uint8(x: Tensor) -> np.ndarray:
    """[3, H, W] (or [B, 3, H, W] with B = 1) in [-1, 1] -> uint8 [H, W, 3]."""
    if x.ndim == 4:
        x = x[0]
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).numpy()


def save_image(x: Tensor, path: PathLike) -> None:
    """Write a [3, H, W] tensor in [-1, 1] as an image file (format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(tensor_to_uint8(x)).save(path)


def make_grid(rows: Sequence[Sequence[Tensor]], pad: int = 2) -> Tensor:
    """Tile rows of equally sized [3, H, W] images (white padding) into one [3, H', W'] tensor."""
    h, w = rows[0][0].shape[-2:]
    ncol = max(len(r) for r in rows)
    out = torch.ones(3, len(rows) * (h + pad) + pad, ncol * (w + pad) + pad)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[:, y:y + h, x:x + w] = img.detach().float().cpu()
    return out


def list_images(folder: PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def read_list_file(path: PathLike, image_dir: Optional[PathLike] = None,
                   default_ext: str = ".jpg") -> list[Path]:
    """Entries of a split/list file, one per line: ids (``123``) or file names (``123.jpg``),
    resolved against ``image_dir`` (default: the list file's folder). Blank lines and ``#``
    comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"list file not found: {path}")
    base = Path(image_dir) if image_dir is not None else path.parent
    out = []
    for line in path.read_text().splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        entry = entry.split()[0]
        if Path(entry).suffix.lower() in IMAGE_EXTENSIONS:
            out.append(base / entry)
            continue
        # A bare id: the default extension, or whichever image file with that stem exists.
        candidates = [base / (entry + ext) for ext in (default_ext, *IMAGE_EXTENSIONS)]
        out.append(next((c for c in candidates if c.is_file()), candidates[0]))
    return out


def resolve_inputs(inputs: Iterable[PathLike], img_dir: Optional[PathLike] = None) -> list[Path]:
    """Expand command-line inputs: image files, folders of images, or ``.txt`` list files (whose
    entries resolve against ``img_dir``)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(list_images(p))
        elif p.suffix.lower() == ".txt":
            out.extend(read_list_file(p, img_dir))
        elif p.suffix.lower() in IMAGE_EXTENSIONS or p.exists():
            out.append(p)
        else:
            raise ImageError(f"input not found: {p} (give image files, folders or .txt list files)")
    return out
