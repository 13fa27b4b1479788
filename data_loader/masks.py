"""Random irregular hole masks for masked (inpainting-style) training, as the official loaders.

A mask is float32 ``[size, size]`` with 0 on the holes and 1 elsewhere (the same for all three
channels). The official recipe (reference README, section 6), drawn with OpenCV on the S x S
canvas of the model size:

- ``n = randint(32, 64)`` strokes (bounds inclusive). For each, ``r = random()``:
  - ``r < 0.6``: a line between two points with coordinates ``randint(1, S)``, thickness
    ``randint(4, width)`` (``cv2.line``);
  - ``0.6 < r < 0.8``: a filled circle, centre ``randint(1, S)`` per axis, radius
    ``randint(4, width)`` (``cv2.circle``);
  - ``r > 0.8``: an elliptic *arc* (``cv2.ellipse``): centre ``randint(1, S)``, half-axes
    ``(randint(1, S), randint(1, S))``, rotation, start and end angles each ``randint(3, 180)``
    degrees (so an arc spans at most 177 degrees), thickness ``randint(4, width)``.
- Per data set (``data_loader.mask_p`` / ``data_loader.mask_width`` in a config; unset values take
  the data set's default, :data:`DATASET_MASKS`): CelebA-HQ (and image folders) draw a mask with
  p = 0.5 and ``width = 16``, FFHQ with p = 0.7 and ``width = 70``, both at the model size;
  otherwise the mask is all ones. Mean hole fraction at 256 px with p = 1: about 0.49.

Small images. The official strokes are at least 4 px thick, so the official masks need S >= 64.
The rule for smaller sizes, and for SynthFaces at every size (its faces are 64 px and below):
the mask is drawn with the recipe above on a ``mask_size`` canvas (default 256 px, i.e. CelebA-HQ's
masks at 256 px with ``width = 16``) and reduced to S by area averaging, a pixel being a hole when
at least half of its area is. Holes then cover the same share of the face as CelebA-HQ's holes at
256 px (about 0.49 at p = 1). ``data_loader.mask_size`` sets the canvas size explicitly.

All randomness comes from the ``numpy.random.Generator`` given (``randint(a, b)`` is
``rng.integers(a, b + 1)``), so a mask is a pure function of the generator state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

MIN_STROKES, MAX_STROKES = 32, 64
MIN_WIDTH = 4
OFFICIAL_MIN_SIZE = 64  # the official strokes (>= 4 px) need a canvas at least this large
SMALL_CANVAS = 256  # canvas of the small-size rule (and of SynthFaces)
P_LINE, P_CIRCLE = 0.6, 0.8  # line: r < 0.6, circle: 0.6 < r < 0.8, arc: r > 0.8 (as the release)
MAX_ANGLE, MIN_ANGLE = 180, 3


@dataclass(frozen=True)
class MaskSettings:
    """Probability of a hole mask, maximum stroke width / radius (px on the canvas) and the canvas
    size (``None``: the image size)."""
    p: float
    width: int
    canvas: Optional[int] = None

    def canvas_for(self, size: int) -> int:
        return int(self.canvas) if self.canvas else int(size)


#: Official defaults per data set type: (p, width).
DATASET_MASKS = {
    "CelebAHQDataset": (0.5, 16),
    "FFHQDataset": (0.7, 70),
    "ImageFolderDataset": (0.5, 16),
    "SynthFaces": (0.5, 16),
}


def mask_settings(dataset_type: str, image_size: int, p: Optional[float] = None, width: Optional[int] = None,
                  canvas: Optional[int] = None) -> MaskSettings:
    """The mask settings of a data set: explicit values win, else :data:`DATASET_MASKS`; the
    canvas is the image size for real images of at least 64 px, else (and for SynthFaces) 256."""
    p0, w0 = DATASET_MASKS.get(dataset_type, DATASET_MASKS["CelebAHQDataset"])
    p = p0 if p is None else float(p)
    width = w0 if width is None else int(width)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"mask probability must be in [0, 1], got {p!r}")
    if width < MIN_WIDTH:
        raise ValueError(f"mask width must be at least {MIN_WIDTH} (strokes are randint({MIN_WIDTH}, width) px), "
                         f"got {width}")
    if canvas is None and (dataset_type == "SynthFaces" or int(image_size) < OFFICIAL_MIN_SIZE):
        canvas = SMALL_CANVAS
    if canvas is not None and int(canvas) < OFFICIAL_MIN_SIZE:
        raise ValueError(f"the mask canvas must be at least {OFFICIAL_MIN_SIZE} px, got {canvas}")
    return MaskSettings(p, width, None if canvas is None else int(canvas))


def draw_strokes(size: int, rng: np.random.Generator, width: int = 16) -> np.ndarray:
    """The official strokes on a ``size`` x ``size`` canvas: uint8, 1 on the holes."""
    import cv2

    canvas = np.zeros((size, size), np.uint8)

    def ri(a: int, b: int) -> int:
        return int(rng.integers(a, b + 1))

    for _ in range(ri(MIN_STROKES, MAX_STROKES)):
        r = float(rng.random())
        if r < P_LINE:
            x1, x2, y1, y2 = ri(1, size), ri(1, size), ri(1, size), ri(1, size)
            cv2.line(canvas, (x1, y1), (x2, y2), 1, ri(MIN_WIDTH, width))
        elif P_LINE < r < P_CIRCLE:
            x, y = ri(1, size), ri(1, size)
            cv2.circle(canvas, (x, y), ri(MIN_WIDTH, width), 1, -1)
        elif r > P_CIRCLE:
            x, y = ri(1, size), ri(1, size)
            s1, s2 = ri(1, size), ri(1, size)
            a1, a2, a3 = ri(MIN_ANGLE, MAX_ANGLE), ri(MIN_ANGLE, MAX_ANGLE), ri(MIN_ANGLE, MAX_ANGLE)
            cv2.ellipse(canvas, (x, y), (s1, s2), a1, a2, a3, 1, ri(MIN_WIDTH, width))
    return canvas


def random_irregular_mask(size: int, rng: np.random.Generator, width: int = 16,
                          canvas: Optional[int] = None) -> np.ndarray:
    """A random hole mask, float32 ``[size, size]``: 0 on the holes, 1 elsewhere.

    Drawn with the official recipe at ``canvas`` px (default: ``size``; sizes below 64 px use a
    256-px canvas) and reduced to ``size`` by area averaging (a pixel is a hole when at least half
    of it is). Deterministic given the state of ``rng``."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"mask size must be a positive integer, got {size!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if int(width) < MIN_WIDTH:
        raise ValueError(f"mask width must be at least {MIN_WIDTH}, got {width}")
    size = int(size)
    if canvas is None:
        canvas = size if size >= OFFICIAL_MIN_SIZE else SMALL_CANVAS
    holes = draw_strokes(int(canvas), rng, int(width))
    if canvas != size:
        import cv2
        cover = cv2.resize(holes.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        holes = cover >= 0.5
    return (1 - holes).astype(np.float32)
