"""Photos in: a file, a PIL image or an array as the uint8 RGB array that alignment works on, with
the alignment's one-line errors naming the file. Files and PIL images are read by the project's one
image opener, :func:`utils.image_io.open_rgb` (EXIF orientation, every mode over its real range,
the pixel limit checked from the header without touching PIL's process-wide limit)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image

from utils.errors import AlignError, ImageError
from utils.image_io import ImageNotFoundError, ImageTooLargeError, ImageUnreadableError, open_rgb

PathLike = Union[str, os.PathLike]
PhotoLike = Union[PathLike, Image.Image, np.ndarray]

DEFAULT_MAX_PIXELS = 80_000_000  # larger photos are refused (about 10,000 x 8,000)


class PhotoTooLargeError(AlignError):
    """The photo has more pixels than the alignment accepts."""


def load_photo(photo: PhotoLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A photo as uint8 [H, W, 3] RGB: a file (EXIF orientation applied, grayscale/alpha converted),
    a PIL image or an array. ``max_pixels`` is the limit (PIL's own decompression-bomb limit does
    not apply, and is never changed). Raises one-line errors naming the file."""
    if isinstance(photo, np.ndarray):
        a = photo
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, 2)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise AlignError(f"a photo array must be [H, W, 3] uint8, got {list(photo.shape)}")
        if a.shape[0] * a.shape[1] > max_pixels:
            raise PhotoTooLargeError(_too_large(None, a.shape[1], a.shape[0], max_pixels))
        return np.ascontiguousarray(a[..., :3].astype(np.uint8, copy=False))
    name: Optional[Path] = None if isinstance(photo, Image.Image) else Path(photo)
    where = f"{name}: " if name else ""
    try:
        return np.asarray(open_rgb(photo, max_pixels, name="photo"))
    except ImageTooLargeError as e:
        raise PhotoTooLargeError(_too_large(name, *e.size, max_pixels)) from None
    except ImageNotFoundError:
        raise AlignError(f"{where}image not found") from None
    except ImageUnreadableError as e:
        what = "corrupt" if e.header_read else "not an image or corrupt"
        raise AlignError(f"{where}cannot read image: {what} ({e.reason})") from None
    except ImageError as e:  # a mode, value range or EXIF block the conversion refuses
        raise AlignError(str(e)) from None


def _too_large(name, w, h, max_pixels) -> str:
    where = f"{name}: " if name else ""
    return (f"{where}photo too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; at most "
            f"{max_pixels / 1e6:.0f} are handled): scale it down first")
