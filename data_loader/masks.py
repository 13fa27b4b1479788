"""Random irregular hole masks for masked (inpainting-style) training.

A mask is float32 ``[size, size]`` with 0 on the holes (strokes) and 1 elsewhere. Following the
official training data: 32..64 strokes, each a straight line (p 0.6), a filled circle (p 0.2) or a
thick elliptic arc (p 0.2); line and arc thickness and circle radius are 4..16 px at 256 px.

All geometry is drawn from ``rng`` in size-independent units (fractions of the image, and
thicknesses in 256-px pixels) and then scaled, so the same generator state gives the same shapes
at every resolution; thicknesses are scaled by ``size / 256`` and never drop below 1 px.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

REFERENCE_SIZE = 256
MIN_STROKES, MAX_STROKES = 32, 64
MIN_WIDTH, MAX_WIDTH = 4, 16
# Cumulative probabilities of the stroke kinds.
P_LINE, P_CIRCLE = 0.6, 0.8  # line: [0, 0.6), circle: [0.6, 0.8), ellipse: [0.8, 1)


def _scaled_width(width_ref: int, size: int) -> int:
    return max(1, int(round(width_ref * size / REFERENCE_SIZE)))


def _disc(draw: ImageDraw.ImageDraw, x: float, y: float, r: float) -> None:
    draw.ellipse((x - r, y - r, x + r, y + r), fill=0)


def _line(draw: ImageDraw.ImageDraw, points, width: int) -> None:
    """A thick polyline with round caps and round joints."""
    draw.line(points, fill=0, width=width)
    if width > 2:
        r = (width - 1) / 2.0
        for x, y in points:
            _disc(draw, x, y, r)


def random_irregular_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random hole mask, float32 ``[size, size]``: 0 on strokes, 1 elsewhere.

    Deterministic given the state of ``rng`` (a ``numpy.random.Generator``)."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"mask size must be a positive integer, got {size!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    size = int(size)
    canvas = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(canvas)
    n = int(rng.integers(MIN_STROKES, MAX_STROKES + 1))
    for _ in range(n):
        kind = rng.random()
        width_ref = int(rng.integers(MIN_WIDTH, MAX_WIDTH + 1))
        width = _scaled_width(width_ref, size)
        if kind < P_LINE:
            x0, y0, x1, y1 = rng.random(4) * size
            _line(draw, [(x0, y0), (x1, y1)], width)
        elif kind < P_CIRCLE:
            cx, cy = rng.random(2) * size
            _disc(draw, cx, cy, width * 1.0)  # width_ref is the radius here
        else:
            cx, cy = rng.random(2) * size
            ax, ay = (0.05 + 0.45 * rng.random(2)) * size  # semi-axes: 5%..50% of the image
            rot = rng.random() * math.pi
            start = rng.random() * 2 * math.pi
            extent = (0.25 + 0.75 * rng.random()) * 2 * math.pi  # a quarter to a full turn
            steps = max(8, int(extent * max(ax, ay) / 2))
            t = start + np.linspace(0.0, extent, steps)
            ex, ey = ax * np.cos(t), ay * np.sin(t)
            px = cx + ex * math.cos(rot) - ey * math.sin(rot)
            py = cy + ex * math.sin(rot) + ey * math.cos(rot)
            _line(draw, list(zip(px.tolist(), py.tolist())), width)
    return (np.asarray(canvas, dtype=np.float32) > 127).astype(np.float32)
