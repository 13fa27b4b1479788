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
    return array_to_tensor(np.asarray(im, dtype=np.uint8))


# ------------------------------------------------------------------------------------ resizing
#: Resize methods. ``opencv``: OpenCV ``cv2.resize(..., INTER_LINEAR)`` on the uint8 image, i.e.
#: bilinear at half-pixel centres *without* antialiasing (a 1024 -> 256 downscale averages 2x2 of
#: every 4x4 pixels), exactly what the official loaders do; the default for the official configs,
#: released checkpoints, editing inputs and metric inputs. ``antialias``: PIL bicubic with
#: antialiasing (the project's earlier resize), an option for new work.
RESIZE_METHODS = ("opencv", "antialias")
DEFAULT_RESIZE = "opencv"


def check_resize(method: str) -> str:
    if method not in RESIZE_METHODS:
        raise ValueError(f"unknown resize method {method!r}; choose from {', '.join(RESIZE_METHODS)}")
    return method


def resize_uint8(a: np.ndarray, size: int, method: str = DEFAULT_RESIZE) -> np.ndarray:
    """Resize a uint8 ``[H, W, 3]`` array to ``[size, size, 3]`` with ``method`` (see
    ``RESIZE_METHODS``); returns the input itself when it already has that size."""
    check_resize(method)
    if a.shape[0] == size and a.shape[1] == size:
        return a
    if method == "opencv":
        import cv2
        return cv2.resize(np.ascontiguousarray(a), (size, size), interpolation=cv2.INTER_LINEAR)
    return np.asarray(Image.fromarray(a).resize((size, size), Image.BICUBIC))


def read_rgb_array(path: PathLike) -> np.ndarray:
    """An image file as uint8 ``[H, W, 3]`` RGB (see :func:`open_rgb`)."""
    return np.asarray(open_rgb(path), dtype=np.uint8)


def array_to_tensor(a: np.ndarray) -> Tensor:
    """uint8 ``[H, W, 3]`` -> float32 ``[3, H, W]`` in [-1, 1] (``x / 127.5 - 1``)."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1).contiguous() / 127.5 - 1.0


def load_image(path: PathLike, size: Optional[int] = None, resize: str = DEFAULT_RESIZE,
               flip: bool = False) -> Tensor:
    """Read an image as float32 [3, size, size] in [-1, 1].

    ``flip`` mirrors it horizontally *before* resizing (the official training order); ``resize``
    is one of ``RESIZE_METHODS`` (default ``opencv``: OpenCV INTER_LINEAR, as the release)."""
    check_resize(resize)
    a = read_rgb_array(path)
    if flip:
        a = a[:, ::-1]
    if size is not None:
        a = resize_uint8(a, int(size), resize)
    return array_to_tensor(a)


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


def canonical_id(stem: str) -> str:
    """The release's spelling of a numeric id: ``str(int(id))`` (``07070`` -> ``7070``); other
    stems are returned unchanged."""
    return str(int(stem)) if stem.isdigit() else stem


def entry_candidates(entry: str, default_ext: str = ".jpg") -> list[str]:
    """File names a list entry may refer to, in order of preference.

    CelebA-HQ lists hold zero-padded ids (``07070``) while the images are named ``7070.jpg``: for a
    bare id the release opens ``str(int(id)) + ext``, so that name comes first and the zero-padded
    file is the fallback; ``default_ext`` is tried first, then the other image extensions. A file
    name (``00001.png``, FFHQ) is taken as written first, its ``str(int(stem))`` spelling second."""
    p = Path(entry)
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        stems, exts = [p.stem, canonical_id(p.stem)], [p.suffix]
    else:
        stems, exts = [canonical_id(entry), entry], list(dict.fromkeys([default_ext, *IMAGE_EXTENSIONS]))
    stems = list(dict.fromkeys(stems))
    parent = "" if str(p.parent) == "." else p.parent.as_posix() + "/"
    return [f"{parent}{s}{e}" for e in exts for s in stems]


def resolve_entry(base: PathLike, entry: str, default_ext: str = ".jpg",
                  existing: Optional[set] = None) -> Path:
    """The image a list entry names inside ``base``: the first candidate of
    :func:`entry_candidates` that exists (``existing``: the set of file names in ``base``, to avoid
    one stat per entry), else the release's name (``str(int(id)) + ext``)."""
    base = Path(base)
    cands = entry_candidates(entry, default_ext)
    for c in cands:
        if (c in existing) if existing is not None and "/" not in c else (base / c).is_file():
            return base / c
    return base / cands[0]


def read_list_entries(path: PathLike) -> list[str]:
    """The entries of a list file, one per line (first whitespace-separated field; blank lines and
    ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"list file not found: {path}")
    out = []
    for line in path.read_text().splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            out.append(entry.split()[0])
    return out


def read_list_file(path: PathLike, image_dir: Optional[PathLike] = None,
                   default_ext: str = ".jpg") -> list[Path]:
    """Entries of a split/list file, one per line: ids (``123``, ``07070``) or file names
    (``123.jpg``), resolved against ``image_dir`` (default: the list file's folder) with
    :func:`resolve_entry` (zero-padded ids open ``str(int(id)).jpg``, as the release, or the
    zero-padded file when only that exists). Blank lines and ``#`` comments are skipped."""
    path = Path(path)
    entries = read_list_entries(path)
    base = Path(image_dir) if image_dir is not None else path.parent
    try:
        existing = set(os.listdir(base)) if base.is_dir() else set()
    except OSError:
        existing = None
    return [resolve_entry(base, e, default_ext, existing) for e in entries]


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
