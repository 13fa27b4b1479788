"""Alignment recipes: the published definitions of how a face is cut from a photo, re-implemented.

* ``ffhq`` -- the FFHQ dataset script: an oriented square from the eye centres and the mouth
  corners, an integer *shrink* of the photo when the face is much larger than the output, a crop
  with a 10 % border, reflect *padding with blur and fade to the median colour* where the square
  leaves the photo, a bilinear quad transform at 4x the output size and an anti-aliased (Lanczos)
  reduction to the output size. Used by the 1024-px FFHQ models and by SynthFaces-trained models
  at any size (SynthFaces faces are laid out like FFHQ crops).
* ``celebahq`` -- the progressive-GAN CelebA-HQ recipe: the same family of square from CelebA's
  five points (eye centres, nose, mouth corners; the points are shifted to pixel centres), the
  same shrink/crop/pad, plus a power-of-two (Lanczos) upscale of small faces before the 4x
  supersampled quad transform. Used by the 256-px CelebA-HQ models.

``aligned_size`` is the recipe's output size; when it differs from the model size (the released
256-px CelebA-HQ models were trained on 1024-px CelebA-HQ images), the aligned image is resized to
the model size as the training loader did (OpenCV ``INTER_LINEAR``, no anti-aliasing).

Coordinates: *continuous* image coordinates, pixel ``k`` spans ``[k, k + 1]`` (its centre is
``k + 0.5``); dlib landmarks are pixel indices (centre = index), i.e. continuous = index + 0.5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image

from model.boxes import REFERENCE_SIZE
from utils.errors import AlignError

RECIPES = ("ffhq", "celebahq")

# 68-point (iBUG 300-W) landmark index ranges, as dlib's predictor returns them.
JAW, BROWS = slice(0, 17), slice(17, 27)
L_EYE, R_EYE = slice(36, 42), slice(42, 48)  # the eye on the image's left / right
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


def _data_names(config: Union[Mapping[str, Any], str, None], keys: tuple[str, ...]) -> list[str]:
    """The names that identify a checkpoint's training data: ``config`` itself when it is a string,
    else its ``data_set.type`` and the string values of ``keys``."""
    if isinstance(config, str):
        return [config]
    names: list[str] = []
    if isinstance(config, Mapping):
        ds = config.get("data_set")
        if isinstance(ds, Mapping) and isinstance(ds.get("type"), str):
            names.append(ds["type"])
        names += [config[k] for k in keys if isinstance(config.get(k), str)]
    return names


def recipe_for(config: Union[Mapping[str, Any], str, None] = None, size: Optional[int] = None) -> str:
    """Alignment recipe of a checkpoint's training data: ``"ffhq"`` or ``"celebahq"``.

    ``config`` is the checkpoint's training config dict (its ``data_name``, ``data_set.type`` and
    ``exp_id`` are read) or a data set name (``"CelebAHQDataset"``, ``"ffhq"``, ``"SynthFaces"``).
    CelebA-HQ data -> ``celebahq``; FFHQ and SynthFaces -> ``ffhq``. Unknown data: ``celebahq`` for
    256-px models (the CelebA-HQ release), ``ffhq`` otherwise."""
    for n in _data_names(config, ("data_name", "exp_id", "name")):
        n = n.lower().replace("-", "").replace("_", "")
        if "celeba" in n:
            return "celebahq"
        if "ffhq" in n or "synth" in n:
            return "ffhq"
    return "celebahq" if size == 256 else "ffhq"


def aligned_size_for(config: Union[Mapping[str, Any], str, None], size: int) -> int:
    """The size the recipe renders before the loader's resize to ``size``: 1024 for models trained
    on the 1024-px CelebA-HQ / FFHQ images, otherwise the model size (SynthFaces renders at it)."""
    names = _data_names(config, ("data_name", "exp_id"))
    real = any(("celeba" in n.lower() or "ffhq" in n.lower()) for n in names)
    return max(REFERENCE_SIZE, size) if real else size


def check_recipe(recipe: str) -> str:
    r = str(recipe).lower().replace("-", "")
    if r not in RECIPES:
        raise AlignError(f"unknown alignment recipe '{recipe}'; choose from {', '.join(RECIPES)}")
    return r


def recipe_points(landmarks: np.ndarray, recipe: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(eye_left, eye_right, mouth_left, mouth_right) in index coordinates from 68 landmarks [68, 2].

    FFHQ: eye centres = mean of the six eye contour points, mouth corners = points 48 and 54.
    CelebA-HQ uses CelebA's five points; from the 68 points they are the same eye centres and mouth
    corners (the nose point does not enter the square)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise AlignError(f"landmarks must have shape [68, 2], got {list(lm.shape)}")
    return lm[L_EYE].mean(0), lm[R_EYE].mean(0), lm[MOUTH_LEFT], lm[MOUTH_RIGHT]


def oriented_square(landmarks: np.ndarray, recipe: str = "ffhq") -> tuple[np.ndarray, float]:
    """The recipe's oriented square: ``quad`` [4, 2] (corners top-left, bottom-left, bottom-right,
    top-right of the aligned image, index coordinates of the photo) and its side ``qsize``.

    Half-axis ``x`` points along the eyes, tilted by the eye-to-mouth direction (rotated 90
    degrees); its length is ``max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)``; the centre is
    ``eye_avg + 0.1 eye_to_mouth``."""
    recipe = check_recipe(recipe)
    el, er, ml, mr = recipe_points(landmarks, recipe)
    eye_avg, mouth_avg = (el + er) * 0.5, (ml + mr) * 0.5
    if recipe == "celebahq":  # CelebA's integer points moved to pixel centres
        eye_avg, mouth_avg = eye_avg + 0.5, mouth_avg + 0.5
    eye_to_eye, eye_to_mouth = er - el, mouth_avg - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    norm = np.hypot(*x)
    if not np.isfinite(norm) or norm < 1e-6:
        raise AlignError("degenerate landmarks: eyes and mouth coincide")
    x = x / norm * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x) * 2)


# ---------------------------------------------------------------------------------- transform
@dataclass(frozen=True)
class AlignTransform:
    """Affine map from aligned-crop coordinates to photo coordinates (both continuous).

    ``matrix`` [2, 3]: ``photo_xy = matrix @ [u, v, 1]`` for a crop point ``(u, v)`` in
    ``[0, size]^2``; ``photo_size`` is ``(W, H)``."""
    matrix: np.ndarray
    size: int
    photo_size: tuple[int, int]

    @property
    def scale(self) -> float:
        """Photo pixels per crop pixel."""
        return float(math.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    @property
    def inverse(self) -> np.ndarray:
        """[2, 3]: crop_uv = inverse @ [x, y, 1]."""
        a = np.linalg.inv(self.matrix[:, :2])
        return np.concatenate([a, -a @ self.matrix[:, 2:]], 1)

    def to_photo(self, uv: np.ndarray) -> np.ndarray:
        """Crop points [N, 2] -> photo points [N, 2] (continuous coordinates)."""
        uv = np.asarray(uv, dtype=np.float64)
        return uv @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_crop(self, xy: np.ndarray) -> np.ndarray:
        """Photo points [N, 2] -> crop points [N, 2] (continuous coordinates)."""
        inv = self.inverse
        return np.asarray(xy, dtype=np.float64) @ inv[:, :2].T + inv[:, 2]

    def corners(self) -> np.ndarray:
        """The crop square's corners in the photo [4, 2] (top-left, bottom-left, bottom-right, top-right)."""
        s = self.size
        return self.to_photo(np.array([[0, 0], [0, s], [s, s], [s, 0]], dtype=np.float64))


def _pad_blur(img: np.ndarray, pad: Sequence[int], qsize: float) -> np.ndarray:
    """The recipes' padding: reflect-pad ``img`` (float32 [H, W, 3]) by ``pad`` = (left, top, right,
    bottom), blur towards the outer edge (sigma ``0.02 qsize``) and fade to the median colour."""
    import cv2

    p0, p1, p2, p3 = (int(v) for v in pad)
    img = np.pad(img, ((p1, p3), (p0, p2), (0, 0)), mode="reflect")
    h, w, _ = img.shape
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    # 1 at the outer edge, 0 where the photo starts, negative inside it.
    mask = np.maximum(1.0 - np.minimum(xx / p0, (w - 1 - xx) / p2), 1.0 - np.minimum(yy / p1, (h - 1 - yy) / p3))
    blur = qsize * 0.02
    blurred = cv2.GaussianBlur(img, (0, 0), sigmaX=blur, sigmaY=blur, borderType=cv2.BORDER_REFLECT)
    img += (blurred - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)[..., None]
    img += (np.median(img, axis=(0, 1)) - img) * np.clip(mask, 0.0, 1.0)[..., None]
    return img


def _quad_transform(img: Image.Image, quad: np.ndarray, t: int) -> Image.Image:
    """PIL's bilinear QUAD transform of the square ``quad`` (index coordinates) to ``t`` x ``t``,
    computed with OpenCV's (multi-threaded) affine warp: the quad is a parallelogram, so the PIL
    transform is affine. Output pixel ``(i, j)`` samples the working image at continuous point
    ``q0 + (i + 0.5) / t (q3 - q0) + (j + 0.5) / t (q1 - q0)``, ``q = quad + 0.5``; samples outside
    the image are black, as in PIL."""
    import cv2

    q = quad + 0.5
    a = np.stack([(q[3] - q[0]) / t, (q[1] - q[0]) / t], 1)
    b = q[0] + a @ np.array([0.5, 0.5]) - 0.5  # index coordinates of the sample of pixel (0, 0)
    m = np.concatenate([a, b[:, None]], 1)
    out = cv2.warpAffine(np.asarray(img), m, (t, t), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return Image.fromarray(out)


def align_photo(photo: Union[np.ndarray, Image.Image], landmarks: np.ndarray, size: int, recipe: str = "ffhq",
                aligned_size: Optional[int] = None, padding: bool = True) -> tuple[np.ndarray, AlignTransform]:
    """Align one face of ``photo`` (uint8 [H, W, 3] RGB or a PIL image) given its 68 landmarks
    ([68, 2], index coordinates) with a recipe. Returns the crop (uint8 [size, size, 3]) and the
    :class:`AlignTransform` from crop to photo.

    The recipe renders at ``aligned_size`` (default ``size``): quad transform at 4x that size,
    Lanczos reduction to it, then (if it differs from ``size``) OpenCV ``INTER_LINEAR`` to ``size``."""
    recipe = check_recipe(recipe)
    size = int(size)
    out_size = int(aligned_size or size)
    if size < 8 or out_size < 8:
        raise AlignError(f"aligned size must be at least 8 px, got {min(size, out_size)}")
    img = photo if isinstance(photo, Image.Image) else Image.fromarray(np.ascontiguousarray(photo))
    if img.mode != "RGB":
        img = img.convert("RGB")
    W, H = img.size
    quad, qsize = oriented_square(landmarks, recipe)
    # g_scale, g_off: working-image continuous coordinates p -> photo coordinates p * g_scale + g_off
    g_scale, g_off = np.ones(2), np.zeros(2)

    # Shrink (integer factor, anti-aliased), fused with the crop below: resizing only the needed
    # region with PIL's ``box`` gives the same pixels as shrinking the whole photo, then cropping.
    shrink = int(np.floor(qsize / out_size * 0.5))
    if shrink > 1:
        sw, sh = int(np.rint(W / shrink)), int(np.rint(H / shrink))
        quad, qsize = quad / shrink, qsize / shrink
        fx, fy = W / sw, H / sh
    else:
        sw, sh, fx, fy = W, H, 1.0, 1.0

    # Crop with a border of 10 % of the square.
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min())),
            int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max())))
    crop = (max(crop[0] - border, 0), max(crop[1] - border, 0), min(crop[2] + border, sw), min(crop[3] + border, sh))
    if crop[2] <= crop[0] or crop[3] <= crop[1]:
        raise AlignError("the face lies outside the photo")
    if shrink > 1:
        box = (crop[0] * fx, crop[1] * fy, crop[2] * fx, crop[3] * fy)
        img = img.resize((crop[2] - crop[0], crop[3] - crop[1]), Image.Resampling.LANCZOS, box=box)
        g_scale = np.array([fx, fy])
    elif crop[2] - crop[0] < W or crop[3] - crop[1] < H:
        img = img.crop(crop)
    quad = quad - crop[0:2]
    g_off = g_off + np.array(crop[0:2], dtype=np.float64) * g_scale

    # CelebA-HQ: simulated super-resolution (power-of-two Lanczos upscale) of small faces.
    if recipe == "celebahq":
        zoom = out_size / qsize
        superres = int(np.exp2(np.ceil(np.log2(zoom))))
        if superres > 1:
            img = img.resize((img.size[0] * superres, img.size[1] * superres), Image.Resampling.LANCZOS)
            quad, qsize = quad * superres, qsize * superres
            g_scale = g_scale / superres

    # Pad where the square leaves the photo: reflect, blur towards the edge, fade to the median.
    pad = (int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min())),
           int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max())))
    pad = (max(-pad[0] + border, 0), max(-pad[1] + border, 0),
           max(pad[2] - img.size[0] + border, 0), max(pad[3] - img.size[1] + border, 0))
    if padding and max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        arr = _pad_blur(np.asarray(img, dtype=np.float32), pad, qsize)
        img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
        quad = quad + pad[:2]
        g_off = g_off - np.asarray(pad[:2], dtype=np.float64) * g_scale

    # 4x supersampled quad transform (bilinear), Lanczos reduction to the recipe's size.
    t = 4 * out_size
    img = _quad_transform(img, quad, t)
    img = img.resize((out_size, out_size), Image.Resampling.LANCZOS)
    out = np.asarray(img)
    if out_size != size:  # the training loader's resize
        import cv2
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)

    # Crop (u, v) in [0, size] -> working image: q0 + u/size (q3 - q0) + v/size (q1 - q0), with
    # q = quad + 0.5 (continuous); then working -> photo by g_scale, g_off.
    q = quad + 0.5
    a = np.stack([(q[3] - q[0]) / size, (q[1] - q[0]) / size], 1)  # columns: du, dv
    m = np.concatenate([a * g_scale[:, None], (q[0] * g_scale + g_off)[:, None]], 1)
    return np.ascontiguousarray(out), AlignTransform(m, size, (W, H))
