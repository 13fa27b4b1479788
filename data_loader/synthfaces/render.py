"""Procedural, anti-aliased renderer of SynthFaces.

Everything is drawn in canonical 1024-px coordinates with signed-distance shapes; the coverage of a
pixel is ``clip(0.5 - d * px_per_unit, 0, 1)`` which gives smooth one-pixel anti-aliasing at every
size. Each shape is evaluated only over its bounding rectangle.

Locality guarantee: a component (``l_eye, r_eye, nose, mouth``) writes only to the pixels of its
box (``component_rect``: the pixels overlapping the scaled canonical box) and reads only its own
factors plus the pixels beneath it. Everything drawn after the components (glasses, lighting) is a
pixel-wise function of the pixel below it and global factors. Changing one component's factors
therefore changes only pixels inside that component's box.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable

import numpy as np

from model.boxes import CANONICAL_BOXES, COMPONENTS, REFERENCE_SIZE

from .factors import EyeFactors, Factors, GlobalFactors, MouthFactors, NoseFactors

R = float(REFERENCE_SIZE)
MIN_SIZE, MAX_SIZE = 16, 2048
_BOX = dict(zip(COMPONENTS, CANONICAL_BOXES))


@lru_cache(maxsize=32)
def _axis(size: int) -> np.ndarray:
    a = ((np.arange(size, dtype=np.float64) + 0.5) * (R / size)).astype(np.float32)
    a.flags.writeable = False
    return a


def component_rect(name: str, size: int) -> tuple[int, int, int, int]:
    """Pixel rectangle ``(row0, row1, col0, col1)`` (exclusive ends) of the pixels overlapping the
    component's canonical box scaled to ``size``: the only pixels the component may change."""
    x0, y0, x1, y1 = _BOX[name]
    k = size / R
    return (max(0, math.floor(y0 * k)), min(size, math.ceil(y1 * k)),
            max(0, math.floor(x0 * k)), min(size, math.ceil(x1 * k)))


def _smooth(e0, e1, x):
    t = np.clip((x - e0) * (1.0 / (e1 - e0)), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _f32(c) -> np.ndarray:
    return np.asarray(c, dtype=np.float32)


class _Canvas:
    __slots__ = ("size", "k", "ax", "img", "face_cov")

    def __init__(self, size: int):
        self.size = size
        self.k = size / R  # pixels per canonical unit
        self.ax = _axis(size)
        self.img = np.empty((size, size, 3), dtype=np.float32)
        self.face_cov = np.zeros((size, size), dtype=np.float32)

    def rect(self, x0, y0, x1, y1, clip=None):
        k, n = self.k, self.size
        r = [max(0, math.floor(y0 * k)), min(n, math.ceil(y1 * k)),
             max(0, math.floor(x0 * k)), min(n, math.ceil(x1 * k))]
        if clip is not None:
            r = [max(r[0], clip[0]), min(r[1], clip[1]), max(r[2], clip[2]), min(r[3], clip[3])]
        r[1] = max(r[1], r[0])
        r[3] = max(r[3], r[2])
        return tuple(r)

    def grid(self, rect):
        r0, r1, c0, c1 = rect
        return self.ax[c0:c1][None, :], self.ax[r0:r1][:, None]

    def cov(self, d):
        return np.clip(0.5 - d * self.k, 0.0, 1.0)

    def cov_thin(self, d, width):
        """Coverage of a band of (possibly sub-pixel) ``width``: never more than its pixel width."""
        return np.clip(np.minimum(0.5 - d * self.k, width * self.k), 0.0, 1.0)

    def soft(self, d, feather):
        return np.clip(0.5 - d * (1.0 / max(feather, 1.0 / self.k)), 0.0, 1.0)

    def paint(self, rect, a, color):
        r0, r1, c0, c1 = rect
        reg = self.img[r0:r1, c0:c1]
        reg += a[..., None] * (color - reg)

    def shade(self, rect, a, factor):
        r0, r1, c0, c1 = rect
        reg = self.img[r0:r1, c0:c1]
        reg *= 1.0 - a[..., None] * (1.0 - _f32(factor))


# ----------------------------------------------------------------------------------------------
# Distance functions (X is a row vector (1, W), Y a column vector (H, 1))
# ----------------------------------------------------------------------------------------------
def _sd_ellipse(X, Y, cx, cy, a, b):
    px = (X - cx) * (1.0 / a)
    py = (Y - cy) * (1.0 / b)
    px2, py2 = px * px, py * py
    k0 = np.sqrt(px2 + py2)
    k1 = np.sqrt(px2 * (1.0 / a) ** 2 + py2 * (1.0 / b) ** 2)
    return (k0 - 1.0) * ((k0 + 1e-7) / (k1 + 1e-7 / max(a, b)))


def _sd_rbox(X, Y, cx, cy, hw, hh, r):
    qx = np.abs(X - cx) - (hw - r)
    qy = np.abs(Y - cy) - (hh - r)
    ox, oy = np.maximum(qx, 0.0), np.maximum(qy, 0.0)
    return np.sqrt(ox * ox + oy * oy) + np.minimum(np.maximum(qx, qy), 0.0) - r


def _sd_segment(X, Y, ax, ay, bx, by, r):
    pax, pay = X - ax, Y - ay
    bax, bay = bx - ax, by - ay
    h = np.clip((pax * bax + pay * bay) * (1.0 / (bax * bax + bay * bay)), 0.0, 1.0)
    dx, dy = pax - bax * h, pay - bay * h
    return np.sqrt(dx * dx + dy * dy) - r


def _curve(f, u):
    """Values of y = f(u) on the column coordinates ``u`` and the factor 1/sqrt(1 + f'^2) that turns
    vertical offsets into approximate distances."""
    fu = f(u)
    s = (f(u + 1.0) - f(u - 1.0)) * 0.5
    return fu[None, :], (1.0 / np.sqrt(1.0 + s * s))[None, :]


def _smin(a, b, k):
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _phase(seed: int, i: int) -> float:
    return ((seed * 0.6180339887 + i * 0.7548776662) % 1.0) * 2.0 * math.pi


# ----------------------------------------------------------------------------------------------
# Global layers
# ----------------------------------------------------------------------------------------------
def _background(cv: _Canvas, g: GlobalFactors):
    n = cv.ax * (1.0 / 512.0) - 1.0
    X, Y = n[None, :], n[:, None]
    ca, sa = math.cos(g.bg_angle), math.sin(g.bg_angle)
    t = np.clip(0.5 + 0.5 * (X * ca + Y * sa), 0.0, 1.0)
    c1, c2 = _f32(g.bg_color1), _f32(g.bg_color2)
    img = cv.img
    img[...] = c1
    img += t[..., None] * (c2 - c1)
    if g.bg_pattern:
        w = g.bg_freq * math.pi
        cb, sb = math.cos(g.bg_pattern_angle), math.sin(g.bg_pattern_angle)
        if g.bg_pattern == 1:  # stripes
            p = np.sin((X * cb + Y * sb) * w + g.bg_phase)
        elif g.bg_pattern == 2:  # dots
            p = np.cos(X * w + g.bg_phase) * np.cos(Y * w + g.bg_phase)
        else:  # waves
            p = np.sin(X * w + 1.5 * np.sin(Y * (0.7 * w) + g.bg_phase))
        img *= (1.0 + g.bg_strength * p)[..., None]


def _head_geometry(g: GlobalFactors):
    cx = 512.0 + g.shift_x
    fw = 292.0 + 40.0 * g.face_width
    return cx, g.shift_y, fw


def _hair_back_sdf(X, Y, g, cx, gy, fw):
    hx = fw + 28.0 + 30.0 * g.hair_volume
    d = _sd_ellipse(X, Y, cx, 470.0 + gy, hx, 420.0 + 25.0 * g.hair_volume)
    if g.hair_length > 0.25:
        y_end = 560.0 + 450.0 * g.hair_length
        hw = fw + 22.0 + 45.0 * g.hair_volume
        d = np.minimum(d, _sd_rbox(X, Y, cx, 0.5 * (420.0 + y_end), hw, 0.5 * (y_end - 420.0), 140.0))
    return d


def _hair_extent(g, fw):
    hx = fw + 28.0 + 30.0 * g.hair_volume
    hw = fw + 22.0 + 45.0 * g.hair_volume if g.hair_length > 0.25 else 0.0
    y_end = 560.0 + 450.0 * g.hair_length if g.hair_length > 0.25 else 900.0
    return max(hx, hw) + 4.0, y_end + 4.0


def _hair_color_field(X, Y, g, base):
    ph = _phase(g.hair_seed, 1)
    m = 1.0 + 0.07 * np.sin(X * 0.23 + 3.0 * np.sin(Y * 0.015 + ph) + ph)
    return m[..., None] * _f32(base)


def _back_layers(cv: _Canvas, g: GlobalFactors):
    cx, gy, fw = _head_geometry(g)
    skin = _f32(g.skin_color)
    # shoulders
    sw = 440.0 + 40.0 * g.male
    rect = cv.rect(cx - sw - 4, 950.0 + gy, cx + sw + 4, R)
    X, Y = cv.grid(rect)
    d = _sd_ellipse(X, Y, cx, 1254.0 + gy, sw, 300.0)
    col = _f32(g.clothes_color) * (0.85 + 0.15 * np.clip(-d / 120.0, 0, 1))[..., None]
    cv.paint(rect, cv.cov(d), col)
    # back hair
    if not g.bald:
        ex, y_end = _hair_extent(g, fw)
        rect = cv.rect(cx - ex, 0.0, cx + ex, y_end)
        X, Y = cv.grid(rect)
        d = _hair_back_sdf(X, Y, g, cx, gy, fw)
        cv.paint(rect, cv.cov(d), _hair_color_field(X, Y, g, np.asarray(g.hair_color) * 0.72))
    # neck
    nw = 105.0 + 30.0 * g.male
    rect = cv.rect(cx - nw - 4, 700.0, cx + nw + 4, R)
    X, Y = cv.grid(rect)
    d = _sd_rbox(X, Y, cx, 930.0 + gy, nw, 200.0, 40.0)
    cv.paint(rect, cv.cov(d), skin * 0.8)
    # ears
    for s in (-1.0, 1.0):
        ex = cx + s * (fw - 8.0)
        rect = cv.rect(ex - 40, 450 + gy, ex + 40, 600 + gy)
        X, Y = cv.grid(rect)
        d = _sd_ellipse(X, Y, ex, 525.0 + gy, 34.0, 62.0)
        cv.paint(rect, cv.cov(d), skin * 0.93)
        d2 = _sd_ellipse(X, Y, ex + s * 8.0, 525.0 + gy, 16.0, 38.0)
        cv.shade(rect, 0.35 * cv.soft(d2, 10.0), (0.7, 0.55, 0.5))


def _face(cv: _Canvas, g: GlobalFactors):
    cx, gy, fw = _head_geometry(g)
    chin = 935.0 + 45.0 * g.face_length + gy
    jw = fw * (0.74 + 0.10 * g.male + 0.08 * g.jaw)
    rect = cv.rect(cx - fw - 4, 50.0 + gy, cx + fw + 4, chin + 4)
    X, Y = cv.grid(rect)
    d1 = _sd_ellipse(X, Y, cx, 500.0 + gy, fw, 440.0)
    d2 = _sd_ellipse(X, Y, cx, 640.0 + gy, jw, chin - 640.0 - gy)
    d = _smin(d1, d2, 70.0)
    a = cv.cov(d)
    rim = 1.0 - 0.13 * _smooth(-70.0, 0.0, d)
    cv.paint(rect, a, rim[..., None] * _f32(g.skin_color))
    r0, r1, c0, c1 = rect
    cv.face_cov[r0:r1, c0:c1] = a
    # cheeks (kept outside every component box)
    if g.blush > 0.05:
        for s in (-1.0, 1.0):
            bx = 512.0 + s * 205.0 + g.shift_x * 0.5
            rect = cv.rect(bx - 50, 565 + gy, bx + 50, 655 + gy)
            X, Y = cv.grid(rect)
            d = _sd_ellipse(X, Y, bx, 610.0 + gy, 44.0, 32.0)
            cv.paint(rect, (0.28 * g.blush) * np.clip(-d / 30.0, 0, 1), _f32((0.92, 0.42, 0.42)))


def _front_hair(cv: _Canvas, g: GlobalFactors):
    if g.bald:
        return
    cx, gy, fw = _head_geometry(g)
    hc = np.asarray(g.hair_color)
    ph = _phase(g.hair_seed, 2)
    h0 = 228.0 + 80.0 * g.hairline + gy
    pc = cx + 70.0 * g.parting
    bangs = g.bangs

    def hairline(x):
        q = (x - pc) * (1.0 / fw)
        y = h0 + 170.0 * q * q
        if bangs > 0:
            y = y + bangs * (110.0 + 14.0 * np.sin(x * 0.04 + ph))
        lim = 350.0 + 220.0 * _smooth(250.0, 420.0, np.abs(x - 512.0))
        return np.minimum(y, lim)

    ex, y_end = _hair_extent(g, fw)
    rect = cv.rect(cx - ex, 0.0, cx + ex, 600.0)
    X, Y = cv.grid(rect)
    d_back = _hair_back_sdf(X, Y, g, cx, gy, fw)
    hl, nrm = _curve(hairline, X[0])
    d = np.maximum(d_back, (Y - hl) * nrm)
    col = _hair_color_field(X, Y, g, hc)
    cv.paint(rect, cv.cov(d), col)
    # side curtains of long hair (kept left of x=262 and right of x=762: outside the eye boxes)
    if g.hair_length > 0.35:
        xl = min(cx - fw + 40.0 + 30.0 * g.hair_volume, 262.0)
        xr = max(cx + fw - 40.0 - 30.0 * g.hair_volume, 762.0)
        for s, edge in ((-1.0, xl), (1.0, xr)):
            x0, x1 = (cx - ex, edge + 4) if s < 0 else (edge - 4, cx + ex)
            rect = cv.rect(x0, 250.0, x1, y_end)
            X, Y = cv.grid(rect)
            slant = 0.12 * np.maximum(Y - 380.0, 0.0)  # curtains open outwards below the eyes
            d = np.maximum(_hair_back_sdf(X, Y, g, cx, gy, fw), s * (edge - X) - slant)
            cv.paint(rect, cv.cov(d), _hair_color_field(X, Y, g, hc * 0.92))


# ----------------------------------------------------------------------------------------------
# Components
# ----------------------------------------------------------------------------------------------
_DARK = _f32((0.1, 0.07, 0.06))


def _eye(cv: _Canvas, e: EyeFactors, name: str):
    box = _BOX[name]
    side = -1.0 if name == "l_eye" else 1.0  # +u points to the outer corner
    rect = component_rect(name, cv.size)
    X, Y = cv.grid(rect)
    ex = 0.5 * (box[0] + box[2]) + e.dx
    ey = box[1] + 112.0 + e.dy
    u = side * (X[0] - ex)  # 1-D, local horizontal coordinate
    v = Y - ey  # (H, 1)
    hw = 50.0 + 22.0 * e.size
    ap = min(max((e.openness - 0.05) / 0.95, 0.0), 1.0) ** 0.6
    hu, hl = 0.5 * hw * ap, 0.28 * hw * ap
    closed_bend = 8.0 * (1.0 - ap) ** 2

    def upper(uu):
        t = uu * (1.0 / hw)
        p = np.maximum(1.0 - t * t, 0.0)
        return (closed_bend - hu * (1.0 + 0.12 * t)) * p

    def lower(uu):
        t = uu * (1.0 / hw)
        return (closed_bend + hl) * np.maximum(1.0 - t * t, 0.0)

    yu, nu = _curve(upper, u)
    yl, nl = _curve(lower, u)
    outside_x = (np.abs(u) - hw)[None, :]

    # under-eye bag: shaded crescent and crease
    bags = e.bags
    if bags > 0.2:
        bw = 0.85 * hw

        def crease(uu):
            t = uu * (1.0 / bw)
            return 16.0 + 10.0 * bags + 0.3 * hw * np.maximum(1.0 - t * t, 0.0)

        yc, nc = _curve(crease, u)
        band = np.maximum((yl + 5.0 - v) * nl, (v - yc) * nc)
        band = np.maximum(band, (np.abs(u) - bw)[None, :])
        a = (0.5 * _smooth(0.3, 0.9, bags)) * cv.soft(band, 6.0)
        cv.shade(rect, a, (0.74, 0.64, 0.7))
        line = np.maximum(np.abs(v - yc) * nc - 2.5, (np.abs(u) - 0.75 * bw)[None, :])
        cv.shade(rect, (0.75 * _smooth(0.35, 0.9, bags)) * cv.cov_thin(line, 5.0), (0.55, 0.42, 0.42))

    # upper-lid crease (skin fold) for visibility at small sizes
    if hu > 4.0:
        fold = np.maximum(np.abs(v - (yu - 10.0)) * nu - 2.0, (np.abs(u) - 0.8 * hw)[None, :])
        cv.shade(rect, 0.3 * cv.cov_thin(fold, 4.0), (0.6, 0.48, 0.45))

    # eyebrow
    uc, L = 0.12 * hw, 1.05 * hw
    base = 50.0 + 8.0 * e.brow_height
    A = 2.0 + 22.0 * e.brow_arch
    T = 4.0 + 12.0 * e.brow_thickness

    def brow(uu):
        t = np.clip((uu - uc) * (1.0 / L), -1.0, 1.0)
        return -base - A * (1.0 - t * t) * (1.0 + 0.5 * t) + 4.0 * t

    yb, nb = _curve(brow, u)
    t = np.clip((u - uc) * (1.0 / L), -1.0, 1.0)
    half = (T * (1.1 - 0.35 * t) * np.sqrt(np.clip(1.0 - t ** 6, 0.0, 1.0)))[None, :]
    d = np.maximum(np.abs(v - yb) * nb - half, (np.abs(u - uc) - L)[None, :])
    ph = _phase(e.texture_seed, 1)
    strands = 0.86 + 0.14 * np.sin(u * 0.8 + ph)[None, :] * np.cos(v * 0.35 + ph)
    cv.paint(rect, 0.95 * cv.cov_thin(d, 2.0 * half) * strands, _f32(e.brow_color))

    # eye white, iris, pupil, catchlight
    if hu + hl > 0.5:
        d_eye = np.maximum(np.maximum((yu - v) * nu, (v - yl) * nl), outside_x)
        a_eye = cv.cov_thin(d_eye, yl - yu)
        cv.paint(rect, a_eye, _f32((0.96, 0.95, 0.92)))
        ri = (0.36 + 0.1 * e.iris_size) * hw
        ix = ex + e.gaze_x * 0.28 * hw
        iy = ey + e.gaze_y * 0.15 * hw + 0.15 * (hl - hu)
        dx, dy = X - ix, Y - iy
        dist = np.sqrt(dx * dx + dy * dy)
        a_iris = np.minimum(cv.cov(dist - ri), a_eye)
        ang = np.arctan2(dy, dx)
        tex = 1.0 - 0.4 * _smooth(0.55 * ri, ri, dist) + 0.1 * np.sin(ang * 11.0 + ph)
        cv.paint(rect, a_iris, tex[..., None] * _f32(e.iris_color))
        cv.paint(rect, np.minimum(cv.cov(dist - 0.45 * ri), a_eye), _f32((0.04, 0.03, 0.03)))
        hx, hy = ix + 0.35 * ri, iy - 0.35 * ri
        dh = np.sqrt((X - hx) ** 2 + (Y - hy) ** 2) - 0.17 * ri
        cv.paint(rect, 0.85 * np.minimum(cv.cov(dh), a_eye), _f32((1.0, 1.0, 1.0)))

    # lids: bold upper line (thicker towards the outer corner with lashes), faint lower line
    tu = 11.0 + 6.0 * e.lashes + 8.0 * e.lashes * np.clip(u * (1.0 / hw), 0.0, 1.0)[None, :]
    d = np.maximum(np.abs(v - yu) * nu - 0.5 * tu, (np.abs(u) - (hw + 3.0 + 6.0 * e.lashes * (u > 0)))[None, :])
    cv.paint(rect, 0.95 * cv.cov(d), _DARK)
    if hu > 2.0:
        d = np.maximum(np.abs(v - yl) * nl - 2.5, outside_x)
        cv.paint(rect, 0.35 * cv.cov_thin(d, 5.0), _DARK)


def _nose(cv: _Canvas, n: NoseFactors):
    rect = component_rect("nose", cv.size)
    X, Y = cv.grid(rect)
    cx = 512.0 + n.dx
    nb = 648.0 + 10.0 * n.length + n.dy
    L = 70.0 + 45.0 * n.length
    top = nb - L
    ww = 40.0 + 30.0 * n.width
    sh = n.shade
    # bridge shading (stronger on the image-left side)
    bw = 14.0 + 6.0 * n.width
    fade = _smooth(top, top + 35.0, Y)
    for s, k in ((-1.0, 1.0), (1.0, 0.6)):
        d = _sd_segment(X, Y, cx + s * bw, top, cx + s * 0.78 * ww, nb - 20.0, 7.0)
        cv.shade(rect, (0.4 * sh * k) * cv.soft(d, 10.0) * fade, (0.72, 0.6, 0.55))
    # tip highlight
    tw = 14.0 + 10.0 * n.width - 5.0 * n.pointy
    d = _sd_ellipse(X, Y, cx, nb - 14.0 - 6.0 * n.pointy, tw, 15.0 + 4.0 * n.length)
    cv.paint(rect, 0.18 * cv.soft(d, 8.0), _f32((1.0, 0.97, 0.93)))
    # wings (alae): shading and outer outline
    for s in (-1.0, 1.0):
        wx = cx + s * (ww - 12.0)
        d = _sd_ellipse(X, Y, wx, nb - 5.0, 16.0 + 6.0 * n.width, 15.0)
        cv.shade(rect, (0.22 * sh) * cv.soft(d, 6.0), (0.75, 0.62, 0.58))
        outer = (s * (X - wx) > -4.0).astype(np.float32)
        cv.shade(rect, 0.5 * cv.cov_thin(np.abs(d) - 2.5, 5.0) * outer, (0.55, 0.42, 0.38))
    # bottom contour under the tip: rounder (p=2) to V-shaped (p=1) with pointiness
    wt = 0.55 * ww * (1.0 - 0.3 * n.pointy)
    D = 4.0 + 16.0 * n.pointy
    p = 2.0 - n.pointy

    def contour(uu):
        return nb + 2.0 + D * np.maximum(1.0 - np.abs(uu) * (1.0 / wt), 0.0) ** p

    yc, nc = _curve(contour, X[0] - cx)
    d = np.maximum(np.abs(Y - yc) * nc - (2.5 + 1.0 * n.width), (np.abs(X - cx) - 0.7 * ww))
    cv.shade(rect, 0.55 * cv.cov_thin(d, 5.0 + 2.0 * n.width), (0.5, 0.38, 0.34))
    # nostrils
    for s in (-1.0, 1.0):
        d = _sd_ellipse(X, Y, cx + s * 0.42 * ww, nb + 1.0, 8.0 + 5.0 * n.width, 4.5 + 2.0 * n.width)
        cv.shade(rect, 0.9 * cv.cov(d), (0.3, 0.2, 0.18))
    # freckles (texture driven by the nose's own seed), faded to zero at the box edges
    if n.freckles > 0.7:
        x0, y0, x1, y1 = _BOX["nose"]
        cell = 22.0
        gx, gy = np.floor(X * (1 / cell)), np.floor(Y * (1 / cell))
        s0 = (n.texture_seed % 9973) * 0.013
        h = np.sin(gx * 12.9898 + gy * 78.233 + s0) * 43758.5453
        h = h - np.floor(h)
        jx = np.sin(gx * 39.346 + gy * 11.135 + s0) * 24634.6345
        jx = jx - np.floor(jx)
        px, py = (gx + 0.25 + 0.5 * jx) * cell, (gy + 0.25 + 0.5 * h) * cell
        d = np.sqrt((X - px) ** 2 + (Y - py) ** 2) - 4.5
        spot = (h < 0.35 * (n.freckles - 0.6) / 0.4).astype(np.float32)
        win = _smooth(x0, x0 + 40.0, X) * _smooth(x1, x1 - 40.0, X) * _smooth(y1, y1 - 30.0, Y) \
            * _smooth(y0 + 30.0, y0 + 60.0, Y)
        cv.shade(rect, 0.35 * cv.cov(d) * spot * win, (0.7, 0.5, 0.38))


def _mouth(cv: _Canvas, m: MouthFactors):
    box = _BOX["mouth"]
    rect = component_rect("mouth", cv.size)
    X, Y = cv.grid(rect)
    mx, my = 512.0 + m.dx, 780.0 + m.dy
    u = X[0] - mx
    v = Y - my
    mw = 68.0 + 36.0 * m.width + 8.0 * m.smile
    lift = -10.0 + 46.0 * m.smile
    g = 56.0 * m.openness ** 1.3
    tu = 8.0 + 14.0 * m.lip_thickness
    tl = 11.0 + 18.0 * m.lip_thickness
    inv = 1.0 / mw

    def mid(uu):
        t = np.clip(uu * inv, -1.0, 1.0)
        return -lift * t * t

    def inner_up(uu):
        t = uu * inv
        return mid(uu) - 0.35 * g * np.maximum(1.0 - t * t, 0.0)

    def inner_lo(uu):
        t = uu * inv
        return mid(uu) + 0.65 * g * (1.0 + 0.2 * m.smile) * np.maximum(1.0 - t * t, 0.0)

    def outer_up(uu):
        t = uu * inv
        bow = 1.0 - 0.35 * np.exp(-(t * t) * 40.0)
        return inner_up(uu) - tu * np.maximum(1.0 - t ** 4, 0.0) * bow

    def outer_lo(uu):
        t = uu * inv
        return inner_lo(uu) + tl * np.maximum(1.0 - t ** 4, 0.0)

    out_x = (np.abs(u) - mw)[None, :]
    need_noise = m.beard > 0.4 or m.mustache > 0.4
    if need_noise:
        r0, r1, c0, c1 = rect
        noise = np.random.default_rng([m.texture_seed, cv.size]).random((r1 - r0, c1 - c0), dtype=np.float32)
        face = cv.face_cov[r0:r1, c0:c1]

    # beard: soft region around and below the mouth, faded to zero inside the mouth box
    if m.beard > 0.4:
        x0, y0, x1, y1 = box
        d = _sd_ellipse(X, Y, mx, my + 32.0, mw + 32.0, 66.0)
        win = _smooth(x0, x0 + 24.0, X) * _smooth(x1, x1 - 24.0, X) * _smooth(y1, y1 - 24.0, Y)
        dens = 0.95 * _smooth(0.4, 0.9, m.beard)
        a = dens * cv.soft(d, 20.0) * win * (0.7 + 0.3 * noise) * face
        cv.paint(rect, a, _f32(m.beard_color))

    # lips
    yuo, nuo = _curve(outer_up, u)
    ylo, nlo = _curve(outer_lo, u)
    ymid, nmid = _curve(mid, u)
    d_lips = np.maximum(np.maximum((yuo - v) * nuo, (v - ylo) * nlo), out_x)
    a_lips = cv.cov_thin(d_lips, ylo - yuo)
    ph = _phase(m.texture_seed, 1)
    lines = (1.0 - 0.07 * (0.5 + 0.5 * np.sin(u * 0.9 + ph)))[None, :]
    lip = _f32(m.lip_color)
    cv.paint(rect, a_lips * lines, lip)
    d_up = np.maximum(np.maximum((yuo - v) * nuo, (v - ymid) * nmid), out_x)
    cv.shade(rect, 0.22 * np.minimum(cv.cov(d_up), a_lips), (0.8, 0.72, 0.72))
    d_hi = _sd_ellipse(X, Y, mx, my + 0.65 * g + 0.5 * tl - 0.4 * lift, 0.33 * mw, 0.22 * tl + 1.0)
    cv.paint(rect, 0.16 * cv.soft(d_hi, 6.0), _f32((1.0, 0.95, 0.95)))

    # interior, teeth, tongue
    if g > 0.5:
        yiu, niu = _curve(inner_up, u)
        yil, nil = _curve(inner_lo, u)
        d_in = np.maximum(np.maximum((yiu - v) * niu, (v - yil) * nil), out_x)
        a_in = cv.cov_thin(d_in, yil - yiu)
        cv.paint(rect, a_in, _f32((0.25, 0.06, 0.07)))
        teeth_h = (0.42 * g * np.maximum(1.0 - (u * inv) ** 2, 0.0))[None, :]
        a_t = np.minimum(cv.cov(v - (yiu + teeth_h)), a_in)
        cv.paint(rect, a_t, m.teeth * _f32((0.97, 0.95, 0.9)))
        d_t = _sd_ellipse(X, Y, mx, my + 0.65 * g - 0.4 * lift, 0.45 * mw, 0.3 * g + 1.0)
        cv.paint(rect, 0.8 * np.minimum(cv.cov(d_t), a_in), _f32((0.72, 0.3, 0.32)))
    # closed-mouth line and smile corners
    a_line = 1.0 - _smooth(2.0, 10.0, g)
    if a_line > 0.0:
        d = np.maximum(np.abs(v - ymid) * nmid - 3.0, (np.abs(u) - mw - 2.0)[None, :])
        cv.paint(rect, (0.85 * a_line) * cv.cov(d), lip * 0.35)
    sm = _smooth(0.45, 0.8, m.smile)
    if sm > 0.0:
        for s in (-1.0, 1.0):
            d = _sd_segment(X, Y, mx + s * (mw + 1.0), my - lift - 1.0, mx + s * (mw + 8.0), my - lift - 7.0, 2.5)
            cv.shade(rect, (0.55 * sm) * cv.cov_thin(d, 5.0), (0.55, 0.42, 0.4))

    # mustache above the upper lip
    if m.mustache > 0.4:
        wm = mw + 14.0
        hm = 14.0 + 16.0 * m.mustache

        def bottom(uu):  # follows the upper lip, drooping past the corners
            t = uu * (1.0 / wm)
            return outer_up(np.clip(uu, -mw, mw)) - 3.0 + 12.0 * t * t

        def topc(uu):
            t = uu * (1.0 / wm)
            return bottom(uu) - hm * (1.0 - 0.7 * t * t)

        yb, nb_ = _curve(bottom, u)
        yt, nt = _curve(topc, u)
        d = np.maximum(np.maximum((yt - v) * nt, (v - yb) * nb_), (np.abs(u) - wm)[None, :])
        dens = 0.95 * _smooth(0.4, 0.85, m.mustache)
        cv.paint(rect, dens * cv.cov(d) * (0.75 + 0.25 * noise), _f32(m.beard_color))


# ----------------------------------------------------------------------------------------------
# Glasses and lighting (drawn over everything; global)
# ----------------------------------------------------------------------------------------------
def _glasses(cv: _Canvas, g: GlobalFactors):
    cx, gy, fw = _head_geometry(g)
    cy = 472.0 + 0.6 * gy
    lw, lh = 76.0 + 14.0 * g.glasses_size, 54.0 + 10.0 * g.glasses_size
    T = 7.0 + 8.0 * g.glasses_thickness
    col = _f32(g.glasses_color)
    centers = (380.0 + 0.6 * g.shift_x, 644.0 + 0.6 * g.shift_x)
    rect = cv.rect(cx - fw - 4, cy - lh - T - 4, cx + fw + 4, cy + lh + T + 4)
    X, Y = cv.grid(rect)
    d = None
    for lx in centers:
        if g.glasses_shape == 0:
            dl = _sd_ellipse(X, Y, lx, cy, lw, lh)
        else:
            dl = _sd_rbox(X, Y, lx, cy, lw, lh, 24.0)
        d = dl if d is None else np.minimum(d, dl)
    cv.paint(rect, g.glasses_tint * cv.cov(d), col * 0.5 + 0.3)
    frame = np.abs(d) - 0.5 * T
    ty = cy - 0.45 * lh
    frame = np.minimum(frame, _sd_segment(X, Y, centers[0] + lw - 4, cy - 18.0, centers[1] - lw + 4, cy - 18.0, 0.4 * T))
    frame = np.minimum(frame, _sd_segment(X, Y, centers[0] - lw + 2, ty, cx - fw + 6.0, ty - 8.0, 0.4 * T))
    frame = np.minimum(frame, _sd_segment(X, Y, centers[1] + lw - 2, ty, cx + fw - 6.0, ty - 8.0, 0.4 * T))
    cv.paint(rect, cv.cov(frame), col)


def _lighting(cv: _Canvas, g: GlobalFactors):
    if g.light_strength <= 0.0:
        return
    n = cv.ax * (1.0 / 512.0) - 1.0
    lx = (g.light_strength * math.cos(g.light_angle)) * n
    ly = (g.light_strength * math.sin(g.light_angle)) * n
    cv.img *= (1.0 + lx[None, :] + ly[:, None])[..., None]


# ----------------------------------------------------------------------------------------------
def check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}], got {size}")
    return int(size)


def render_float(factors: Factors, size: int = 256, omit: Iterable[str] = ()) -> np.ndarray:
    """Render as float32 HxWx3 in [0, 1] (before quantisation). ``omit``: components not drawn."""
    size = check_size(size)
    omit = set(omit)
    bad = omit - set(COMPONENTS)
    if bad:
        raise ValueError(f"unknown component(s) {sorted(bad)}; choose from {', '.join(COMPONENTS)}")
    g = factors.glob
    cv = _Canvas(size)
    _background(cv, g)
    _back_layers(cv, g)
    _face(cv, g)
    _front_hair(cv, g)
    if "l_eye" not in omit:
        _eye(cv, factors.l_eye, "l_eye")
    if "r_eye" not in omit:
        _eye(cv, factors.r_eye, "r_eye")
    if "nose" not in omit:
        _nose(cv, factors.nose)
    if "mouth" not in omit:
        _mouth(cv, factors.mouth)
    if g.glasses:
        _glasses(cv, g)
    _lighting(cv, g)
    np.clip(cv.img, 0.0, 1.0, out=cv.img)
    return cv.img


def render(factors: Factors, size: int = 256, omit: Iterable[str] = ()) -> np.ndarray:
    """Render a face: uint8 array ``[size, size, 3]``, a pure function of ``factors`` and ``size``."""
    img = render_float(factors, size, omit)
    img *= 255.0
    img += 0.5
    return img.astype(np.uint8)
