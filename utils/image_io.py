"""Image files in and out: RGB conversion, resizing, [-1, 1] tensors, list files and folders."""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import IO, Iterable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from torch import Tensor

from utils.errors import ImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
PathLike = Union[str, os.PathLike]


#: Alpha modes: composited over white.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def max_image_pixels() -> Optional[int]:
    """The largest image (width x height) read: PIL's decompression-bomb limit (None: no limit)."""
    return Image.MAX_IMAGE_PIXELS


def _integer_top(im: Image.Image, fmt: Optional[str], tags) -> int:
    """The white level of a single-channel integer image (mode ``I`` or ``I;16*``): from the file's
    bit depth and signedness (TIFF tags; 16-bit PNG), else the full range of its mode."""
    if im.mode.startswith("I;16"):
        return 65535
    bits, signed = 32, True
    if fmt == "PNG":
        bits, signed = 16, False
    elif fmt == "TIFF" and tags is not None:
        b, f = tags.get(258, (32,)), tags.get(339, (2,))
        bits = int(b[0] if isinstance(b, tuple) else b)
        signed = (f[0] if isinstance(f, tuple) else f) == 2
    return 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1


def _deep_to_l(im: Image.Image, path: Path, fmt: Optional[str] = None, tags=None) -> Image.Image:
    """A 16/32-bit integer or float grayscale image as 8-bit ``L`` over its real range: integers
    from 0 to the white level of their bit depth, floats over [0, 1]; NaN/inf and floats outside
    [0, 1] are errors."""
    a = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        if not np.isfinite(a).all():
            raise ImageError(f"cannot read image {path}: it holds NaN or infinite values")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ImageError(f"cannot read image {path}: a float image must hold values in [0, 1], this one holds "
                             f"[{lo:g}, {hi:g}]; convert it to 8 or 16 bits")
        a = a * 255.0
    else:
        top = _integer_top(im, fmt, tags)
        a = np.clip(a, 0, top) * (255.0 / top)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def to_rgb(im: Image.Image, path: PathLike = "image") -> Image.Image:
    """A loaded PIL image as 8-bit RGB, as a viewer shows it: EXIF orientation applied; alpha
    composited over white; 16/32-bit and float grayscale scaled from their real range (see
    :func:`_deep_to_l`); palette, CMYK, YCbCr and 1-bit converted by PIL."""
    fmt, tags = im.format, getattr(im, "tag_v2", None)  # the transposed copy has neither
    try:
        im = ImageOps.exif_transpose(im)
    except Exception as e:  # noqa: BLE001 - any malformed EXIF block
        raise ImageError(f"cannot read image {path}: corrupt EXIF data ({e.__class__.__name__}); "
                         "replace or remove the file") from None
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        im = _deep_to_l(im, Path(path), fmt, tags)
    if im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    try:
        return im.convert("RGB")
    except ValueError:
        raise ImageError(f"cannot read image {path}: its colour mode {im.mode} is not supported; "
                         "convert it to RGB") from None


class ImageNotFoundError(ImageError):
    """An image file that does not exist (``path``)."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


class ImageUnreadableError(ImageError):
    """An image that cannot be decoded: ``path``; ``reason`` the decoder's exception class;
    ``header_read`` True when its header was understood and its pixel data was not."""

    def __init__(self, message: str, path: PathLike, reason: str, header_read: bool):
        super().__init__(message)
        self.path, self.reason, self.header_read = path, reason, header_read


class ImageTooLargeError(ImageError):
    """An image with more pixels than the reader's limit: ``path``, ``size`` (W, H) from its
    header, ``limit``."""

    def __init__(self, message: str, path: PathLike, size: tuple[int, int], limit: int):
        super().__init__(message)
        self.path, self.size, self.limit = path, size, limit


def _read_header(fp: IO[bytes], filename: str) -> ImageFile.ImageFile:
    """The image in ``fp`` with only its header parsed, found as ``Image.open`` finds it (the first
    registered format that accepts the file's first bytes and parses its header) but without PIL's
    decompression-bomb check: the caller compares the size with its own limit. PIL's check reads
    the process-wide ``Image.MAX_IMAGE_PIXELS``, which a reader with another limit would otherwise
    have to change while other threads read images."""
    prefix = fp.read(16)
    tried: set[str] = set()
    for load_plugins in (Image.preinit, Image.init):  # the common formats first, then every one
        load_plugins()
        for fmt in [f for f in Image.ID if f not in tried]:
            tried.add(fmt)
            factory, accept = Image.OPEN[fmt]
            ok = accept(prefix) if accept else True
            if not ok or isinstance(ok, str):  # a str: the format is recognised but cannot be read
                continue
            fp.seek(0)
            try:
                return factory(fp, filename)
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue
    raise UnidentifiedImageError(f"cannot identify image file {filename!r}")


def open_rgb(source: Union[PathLike, Image.Image], max_pixels: Optional[int] = None,
             name: str = "image") -> Image.Image:
    """The project's image opener: an image file (or a PIL image) as 8-bit RGB, as a viewer shows
    it (:func:`to_rgb`: EXIF orientation, alpha over white, 16/32-bit and float grayscale over
    their real range, palette). Raises ImageError kinds naming the file: missing
    (:class:`ImageNotFoundError`), not an image or corrupt (:class:`ImageUnreadableError`), more
    than ``max_pixels`` pixels (:class:`ImageTooLargeError`, checked from the header, before
    decoding; default :func:`max_image_pixels`, PIL's limit). PIL's ``Image.MAX_IMAGE_PIXELS`` is
    only read, never changed, so threads may read images with different limits at once. ``name``
    names a PIL image in messages."""
    limit = max_image_pixels() if max_pixels is None else int(max_pixels)
    if isinstance(source, Image.Image):
        return _decode(source, name, limit)
    path = Path(source)
    if not path.is_file():
        raise ImageNotFoundError(f"image not found: {path}", path)
    try:
        with open(path, "rb") as fp:
            try:
                im = _read_header(fp, str(path))
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
                raise ImageUnreadableError(_unreadable(path, e), path, e.__class__.__name__, False) from None
            return _decode(im, path, limit)  # inside the with: some formats read the file lazily
    except OSError as e:  # the file cannot be opened (permissions, a vanished file)
        raise ImageUnreadableError(_unreadable(path, e), path, e.__class__.__name__, False) from None


def _unreadable(path: PathLike, e: BaseException) -> str:
    return f"cannot read image {path}: not an image or corrupt ({e.__class__.__name__}); replace or remove the file"


def _decode(im: Image.Image, path: PathLike, limit: Optional[int]) -> Image.Image:
    """Check ``im``'s header size against ``limit``, decode it and convert it with :func:`to_rgb`."""
    w, h = im.size
    if limit is not None and w * h > limit:
        raise ImageTooLargeError(f"cannot read image {path}: too large ({w}x{h} px); images above {limit} px are "
                                 "refused as possible decompression bombs; resize it first", path, (w, h), limit)
    try:
        im.load()
    except Image.DecompressionBombError:  # formats whose frames or tiles PIL checks while decoding
        raise ImageError(f"cannot read image {path}: a frame or tile is above PIL's limit of "
                         f"{Image.MAX_IMAGE_PIXELS} px (a possible decompression bomb); resize it first") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageUnreadableError(_unreadable(path, e), path, e.__class__.__name__, True) from None
    return to_rgb(im, path)


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
    if not bool(torch.isfinite(x).all()):
        raise ImageError("an image to write holds NaN or infinite values (the network's output is not finite; "
                         "its weights may be corrupt)")
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
    stems (``²``, which ``str.isdigit`` accepts, included) are returned unchanged."""
    return str(int(stem)) if stem.isascii() and stem.isdigit() else stem


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
