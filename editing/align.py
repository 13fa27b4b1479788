"""Edit your own photos: find faces, align them exactly like the model's training data, paste back.

    from editing.align import FaceAligner
    aligner = FaceAligner(size=256, recipe="celebahq", aligned_size=1024)
    face = aligner.align("photo.jpg")[0]          # the largest face (all_faces=True: every face)
    face.crop                                       # [3, 256, 256] in [-1, 1], ready for the encoder
    out = face.paste(edited)                        # uint8 [H, W, 3]: the photo, face replaced

Detection and landmarks use dlib (the ``dlib-bin`` wheel) with the models that the
``face-recognition-models`` package ships: the HOG frontal face detector (default) or the CNN (MMOD)
detector, and the 68-point shape predictor. Nothing is downloaded at run time.

Alignment recipes (the published definitions, re-implemented here):

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

import argparse
import importlib.util
import math
import os
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from model.boxes import CANONICAL_BOXES, REFERENCE_SIZE
from utils.errors import AlignError, ImageError, UserError
from utils.image_io import to_rgb

RECIPES = ("ffhq", "celebahq")
DETECTORS = ("hog", "cnn")
PathLike = Union[str, os.PathLike]
PhotoLike = Union[PathLike, Image.Image, np.ndarray]

# 68-point (iBUG 300-W) landmark index ranges, as dlib's predictor returns them.
JAW, BROWS = slice(0, 17), slice(17, 27)
L_EYE, R_EYE = slice(36, 42), slice(42, 48)  # the eye on the image's left / right
MOUTH_OUTER, MOUTH = slice(48, 60), slice(48, 68)
NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT = 30, 48, 54

DEFAULT_MAX_PIXELS = 80_000_000  # larger photos are refused (about 10,000 x 8,000)
DEFAULT_MIN_FACE_FRACTION = 0.5  # the face's square must span >= this fraction of the model size
DETECT_MAX_SIDE = 1024  # detection runs on a copy at most this large (landmarks on the full photo)
DLIB_PACKAGES = "pip install dlib-bin face-recognition-models"


class NoFaceError(AlignError):
    """No face was detected."""


class FaceTooSmallError(AlignError):
    """The face is too small for the model's input size."""


class PhotoTooLargeError(AlignError):
    """The photo has more pixels than the alignment accepts."""


class DlibMissingError(AlignError):
    """dlib or the landmark models are not installed."""


# ------------------------------------------------------------------------------------- recipes
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


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """CelebA's five points [5, 2] (left eye, right eye, nose tip, mouth left, mouth right)."""
    el, er, ml, mr = recipe_points(landmarks, "celebahq")
    return np.stack([el, er, np.asarray(landmarks, np.float64)[NOSE_TIP], ml, mr])


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


# ---------------------------------------------------------------------------------- detection
def _require_dlib():
    try:
        import dlib  # noqa: F401
    except ImportError:
        raise DlibMissingError(f"face alignment needs dlib: {DLIB_PACKAGES}") from None
    return dlib


def model_file(name: str) -> str:
    """Path of a model file shipped by ``face-recognition-models`` (found without importing the
    package, whose ``pkg_resources`` import fails on recent setuptools)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibMissingError(f"face alignment needs the landmark models: {DLIB_PACKAGES}")
    for root in spec.submodule_search_locations:
        p = Path(root) / "models" / name
        if p.is_file():
            return str(p)
    raise DlibMissingError(f"face-recognition-models has no {name}; reinstall it: {DLIB_PACKAGES}")


@lru_cache(maxsize=None)
def _dlib_models(method: str):
    dlib = _require_dlib()
    predictor = dlib.shape_predictor(model_file("shape_predictor_68_face_landmarks.dat"))
    if method == "cnn":
        detector = dlib.cnn_face_detection_model_v1(model_file("mmod_human_face_detector.dat"))
    else:
        detector = dlib.get_frontal_face_detector()
    return dlib, detector, predictor


@dataclass(frozen=True)
class Face:
    """A detected face: ``box`` (x0, y0, x1, y1) and ``landmarks`` [68, 2] in photo index coordinates."""
    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float = 0.0

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


class FaceDetector:
    """dlib face detector + 68-point landmarks.

    ``method``: ``"hog"`` (default, fast) or ``"cnn"`` (MMOD, more robust to pose, slower on a CPU).
    Detection runs on a copy scaled to at most ``max_side`` px (landmarks on the full photo); when
    nothing is found it retries once with 2x upsampling (finds faces down to about 40 px)."""

    def __init__(self, method: str = "hog", max_side: int = DETECT_MAX_SIDE):
        if method not in DETECTORS:
            raise AlignError(f"unknown face detector '{method}'; choose from {', '.join(DETECTORS)}")
        self.method, self.max_side = method, int(max_side)
        self._dlib, self._detector, self._predictor = _dlib_models(method)

    def _run(self, img: np.ndarray, upsample: int) -> list[tuple[tuple[float, float, float, float], float]]:
        if self.method == "cnn":
            dets = self._detector(img, upsample)
            return [((d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1), float(d.confidence))
                    for d in dets]
        rects, scores, _ = self._detector.run(img, upsample, 0.0)
        return [((r.left(), r.top(), r.right() + 1, r.bottom() + 1), float(s)) for r, s in zip(rects, scores)]

    def landmarks(self, photo: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """68 landmarks [68, 2] (index coordinates) of the face in ``box`` (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(photo, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def detect(self, photo: np.ndarray) -> list[Face]:
        """All faces of ``photo`` (uint8 [H, W, 3] RGB), largest first."""
        photo = np.ascontiguousarray(photo)
        h, w = photo.shape[:2]
        f = min(1.0, self.max_side / max(h, w))
        small = photo
        if f < 1.0:
            import cv2
            small = cv2.resize(photo, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        found = self._run(small, 0)
        if not found:  # small faces: once more at 2x
            found = self._run(small, 1)
        faces = []
        for (x0, y0, x1, y1), score in found:
            box = (x0 / f, y0 / f, x1 / f, y1 / f)
            faces.append(Face(box, self.landmarks(photo, box), score))
        return sorted(faces, key=lambda fc: -fc.area)


# ------------------------------------------------------------------------------ photos and faces
def load_photo(photo: PhotoLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A photo as uint8 [H, W, 3] RGB: a file (EXIF orientation applied, grayscale/alpha converted),
    a PIL image or an array. Raises one-line errors naming the file."""
    if isinstance(photo, np.ndarray):
        a = photo
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, 2)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise AlignError(f"a photo array must be [H, W, 3] uint8, got {list(photo.shape)}")
        if a.shape[0] * a.shape[1] > max_pixels:
            raise PhotoTooLargeError(_too_large(None, a.shape[1], a.shape[0], max_pixels))
        return np.ascontiguousarray(a[..., :3].astype(np.uint8, copy=False))
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # max_pixels applies instead of PIL's decompression-bomb limit
    try:
        if isinstance(photo, Image.Image):
            im, name = photo, None
        else:
            name = Path(photo)
            if not name.is_file():
                raise AlignError(f"{name}: image not found")
            try:
                im = Image.open(name)
            except (UnidentifiedImageError, OSError, SyntaxError) as e:
                raise AlignError(f"{name}: cannot read image: not an image or corrupt "
                                 f"({e.__class__.__name__})") from None
        w, h = im.size  # from the header: a photo too large is refused before it is decoded
        if w * h > max_pixels:
            raise PhotoTooLargeError(_too_large(name, w, h, max_pixels))
        try:
            im.load()
            im = ImageOps.exif_transpose(im)
        except (OSError, SyntaxError, ValueError) as e:
            raise AlignError(f"{name}: cannot read image: corrupt ({e.__class__.__name__})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    try:
        return np.asarray(to_rgb(im, name or "photo"))  # every mode over its real range
    except ImageError as e:
        raise AlignError(str(e)) from None


def _too_large(name, w, h, max_pixels) -> str:
    where = f"{name}: " if name else ""
    return (f"{where}photo too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; at most "
            f"{max_pixels / 1e6:.0f} are handled): scale it down first")


def face_mask_polygon(crop_landmarks: np.ndarray, size: int) -> np.ndarray:
    """Face region in crop coordinates [K, 2]: convex hull of the jaw, the eyebrows lifted by 8 %
    of the crop (forehead) and the four component boxes, clipped to the crop."""
    import cv2

    lm = np.asarray(crop_landmarks, dtype=np.float64)
    brows = lm[BROWS] - np.array([0.0, 0.08 * size])
    boxes = np.array([(x, y) for x0, y0, x1, y1 in CANONICAL_BOXES for x in (x0, x1) for y in (y0, y1)],
                     dtype=np.float64) * (size / REFERENCE_SIZE)
    pts = np.concatenate([lm[JAW], brows, boxes]).clip(0.5, size - 0.5)
    return cv2.convexHull(pts.astype(np.float32))[:, 0].astype(np.float64)


@dataclass
class AlignedFace:
    """One face of a photo, aligned for a model.

    ``crop`` [3, S, S] float32 in [-1, 1]; ``image`` the same crop as uint8 [S, S, 3];
    ``transform`` crop -> photo; ``landmarks`` [68, 2] photo index coordinates; ``photo`` the uint8
    [H, W, 3] photo it came from. ``paste(edited)`` puts an edited crop back into the photo."""
    crop: Tensor
    image: np.ndarray
    transform: AlignTransform
    landmarks: np.ndarray
    photo: np.ndarray
    box: tuple[float, float, float, float]
    recipe: str
    index: int = 0
    feather: float = 0.06
    _mask: Optional[tuple[tuple[int, int, int, int], np.ndarray]] = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return self.transform.size

    @property
    def crop_landmarks(self) -> np.ndarray:
        """Landmarks [68, 2] in crop continuous coordinates."""
        return self.transform.to_crop(self.landmarks + 0.5)

    def mask(self) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """Feathered face mask in the photo: ``(roi, m)`` with ``roi = (x0, y0, x1, y1)`` and
        ``m`` float32 [y1 - y0, x1 - x0] in [0, 1]; 0 outside the face polygon (and outside the roi),
        rising to 1 over ``feather`` x the face square's side inside it."""
        if self._mask is None:
            import cv2

            poly = self.transform.to_photo(face_mask_polygon(self.crop_landmarks, self.size)) - 0.5  # index coords
            h, w = self.photo.shape[:2]
            x0, y0 = max(int(np.floor(poly[:, 0].min())) - 1, 0), max(int(np.floor(poly[:, 1].min())) - 1, 0)
            x1, y1 = min(int(np.ceil(poly[:, 0].max())) + 2, w), min(int(np.ceil(poly[:, 1].max())) + 2, h)
            if x1 <= x0 or y1 <= y0:
                self._mask = ((0, 0, 0, 0), np.zeros((0, 0), np.float32))
                return self._mask
            inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
            shift = 4  # sub-pixel polygon vertices
            pts = np.rint((poly - [x0, y0]) * (1 << shift)).astype(np.int32)
            cv2.fillPoly(inside, [pts], 1, lineType=cv2.LINE_8, shift=shift)
            dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
            ramp = max(self.feather * self.size * self.transform.scale, 1.0)
            t = np.clip(dist / ramp, 0.0, 1.0)
            self._mask = ((x0, y0, x1, y1), (t * t * (3.0 - 2.0 * t)).astype(np.float32))
        return self._mask

    def warp_back(self, edited: Union[Tensor, np.ndarray],
                  roi: Optional[tuple[int, int, int, int]] = None) -> np.ndarray:
        """The edited crop warped into photo coordinates over ``roi`` (default: the mask's):
        float32 [y1 - y0, x1 - x0, 3] in [0, 255] (bilinear sampling of the crop)."""
        import cv2

        img = _as_float_image(edited, self.size)
        x0, y0, x1, y1 = roi if roi is not None else self.mask()[0]
        inv = self.transform.inverse  # photo continuous -> crop continuous
        # index coordinates: crop_idx = inv[:, :2] @ (photo_idx + 0.5 + roi0) + inv[:, 2] - 0.5
        m = inv.copy()
        m[:, 2] = inv[:, :2] @ (np.array([x0, y0], np.float64) + 0.5) + inv[:, 2] - 0.5
        return cv2.warpAffine(img, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    def paste(self, edited: Union[Tensor, np.ndarray], into: Optional[np.ndarray] = None,
              base: Union[Tensor, np.ndarray, None] = None) -> np.ndarray:
        """Blend an edited crop ([3, S, S] / [1, 3, S, S] tensor in [-1, 1], or uint8 [S, S, 3]) back
        into the photo (or into ``into``, e.g. the result of pasting another face of the same photo)
        with the feathered face mask. Returns uint8 [H, W, 3]; pixels where the mask is 0 are the
        original's.

        ``base`` (e.g. the model's reconstruction of the crop): paste only the change
        ``edited - base`` on top of the photo, which keeps the photo's own detail wherever the edit
        changes nothing (useful with low-resolution models)."""
        target = self.photo if into is None else into
        if target.shape != self.photo.shape:
            raise AlignError(f"cannot paste into an image of shape {list(target.shape)}; the photo is "
                             f"{list(self.photo.shape)}")
        out = target.copy()
        (x0, y0, x1, y1), m = self.mask()
        if m.size == 0:
            return out
        warped = self.warp_back(edited, (x0, y0, x1, y1))
        region = out[y0:y1, x0:x1].astype(np.float32)
        if base is not None:
            warped = region + warped - self.warp_back(base, (x0, y0, x1, y1))
        blended = region + (warped - region) * m[..., None]
        out[y0:y1, x0:x1] = np.where(m[..., None] > 0, np.clip(np.rint(blended), 0, 255), region).astype(np.uint8)
        return out


def _as_float_image(x: Union[Tensor, np.ndarray], size: int) -> np.ndarray:
    """[3, S, S] / [1, 3, S, S] tensor in [-1, 1] or uint8 [S, S, 3] -> float32 [S, S, 3] in [0, 255]."""
    if isinstance(x, Tensor):
        t = x.detach().float().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] != 3:
            raise AlignError(f"an edited crop must be [3, {size}, {size}] or [1, 3, {size}, {size}], "
                             f"got {list(x.shape)}")
        a = ((t.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
    else:
        a = np.asarray(x, dtype=np.float32)
    if a.shape != (size, size, 3):
        raise AlignError(f"an edited crop must be {size}x{size} (the aligned size), got {list(a.shape)}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _to_tensor(img: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1).contiguous() / 127.5 - 1.0


class FaceAligner:
    """Detect, align and (through :meth:`AlignedFace.paste`) paste back faces for a model of
    ``size`` px.

    ``recipe`` ``ffhq`` / ``celebahq``; ``aligned_size`` the recipe's render size (default ``size``;
    1024 for models trained on 1024-px CelebA-HQ/FFHQ, see :func:`aligned_size_for`); ``detector``
    ``hog`` / ``cnn``; a face whose square spans less than ``min_face_fraction * size`` photo pixels
    is refused (FaceTooSmallError); photos over ``max_pixels`` are refused (PhotoTooLargeError)."""

    def __init__(self, size: int, recipe: str = "ffhq", aligned_size: Optional[int] = None, detector: str = "hog",
                 min_face_fraction: float = DEFAULT_MIN_FACE_FRACTION, max_pixels: int = DEFAULT_MAX_PIXELS,
                 feather: float = 0.06):
        self.size, self.recipe = int(size), check_recipe(recipe)
        self.aligned_size = int(aligned_size or size)
        self.detector_name, self._detector = detector, None
        if detector not in DETECTORS:
            raise AlignError(f"unknown face detector '{detector}'; choose from {', '.join(DETECTORS)}")
        self.min_face_fraction, self.max_pixels, self.feather = float(min_face_fraction), int(max_pixels), feather
        self.skipped: list[str] = []  # faces the last align(all_faces=True) left out (too small)

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = FaceDetector(self.detector_name)
        return self._detector

    def align_landmarks(self, photo: PhotoLike, landmarks: np.ndarray, index: int = 0,
                        box: Optional[Sequence[float]] = None, name: Optional[str] = None) -> AlignedFace:
        """Align the face with the given 68 landmarks ([68, 2] photo index coordinates), e.g. from
        another landmark detector; no detection runs."""
        arr = load_photo(photo, self.max_pixels)
        lm = np.asarray(landmarks, dtype=np.float64)
        _, qsize = oriented_square(lm, self.recipe)
        need = self.min_face_fraction * self.size
        if qsize < need:
            where = f"{name}: " if name else ""
            raise FaceTooSmallError(f"{where}face too small for the {self.size}-px model (its aligned square spans "
                                    f"{qsize:.0f} px of the photo; at least {need:.0f} px needed)")
        img, tf = align_photo(arr, lm, self.size, self.recipe, self.aligned_size)
        if box is None:
            box = (*lm.min(0), *(lm.max(0) + 1))
        return AlignedFace(_to_tensor(img), img, tf, lm, arr, tuple(float(v) for v in box), self.recipe, index,
                           self.feather)

    def align(self, photo: PhotoLike, all_faces: bool = False, name: Optional[str] = None) -> list[AlignedFace]:
        """Detect and align the largest face (``all_faces``: every face large enough for the model,
        largest first). Raises NoFaceError / FaceTooSmallError / PhotoTooLargeError, one line naming
        the file. With ``all_faces``, faces too small are skipped (``skipped`` lists them) unless
        none is large enough."""
        if name is None and isinstance(photo, (str, os.PathLike)):
            name = str(photo)
        arr = load_photo(photo, self.max_pixels)
        faces = self.detector.detect(arr)
        where = f"{name}: " if name else ""
        if not faces:
            raise NoFaceError(f"{where}no face found ({arr.shape[1]}x{arr.shape[0]} photo, {self.detector_name} "
                              "detector; faces need to be roughly frontal and at least about 40 px wide)")
        out: list[AlignedFace] = []
        self.skipped: list[str] = []
        first_error: Optional[FaceTooSmallError] = None
        for i, f in enumerate(faces if all_faces else faces[:1]):
            try:
                out.append(self.align_landmarks(arr, f.landmarks, i, f.box, name))
            except FaceTooSmallError as e:
                first_error = first_error or e
                self.skipped.append(str(e))
        if not out:
            raise first_error  # type: ignore[misc]
        return out


# ------------------------------------------------------------------------------- command line
def _benchmark(size: int, recipe: str, aligned_size: Optional[int], repeats: int, detector: str) -> dict:
    """Detection + alignment + paste-back time on scikit-image's astronaut (512 x 512)."""
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut())
    aligner = FaceAligner(size, recipe, aligned_size, detector, min_face_fraction=0.0)  # time any model size
    face = aligner.align(photo)[0]  # warm up (loads the dlib models)
    face.paste(face.crop)
    times = {"detect": [], "align": [], "paste": [], "total": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        faces = aligner.detector.detect(photo)
        t1 = time.perf_counter()
        face = aligner.align_landmarks(photo, faces[0].landmarks, box=faces[0].box)
        t2 = time.perf_counter()
        face.paste(face.crop)
        t3 = time.perf_counter()
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            times[k].append(v)
    return {k: float(np.median(v)) for k, v in times.items()}


def _parser() -> argparse.ArgumentParser:
    from utils.cli import ArgumentParser

    p = ArgumentParser(prog="python -m editing.align",
          description="Detect faces in photos and write them aligned like a model's training data.")
    p.add_argument("photos", nargs="*", help="photo files")
    p.add_argument("--out", default="output/aligned", help="output folder (default output/aligned)")
    p.add_argument("--size", type=int, default=256, help="model size in px (default 256)")
    p.add_argument("--align_recipe", default="ffhq", choices=RECIPES, help="alignment recipe (default ffhq)")
    p.add_argument("--aligned_size", type=int, default=None,
                   help="recipe render size before the loader's resize (default: --size)")
    p.add_argument("--detector", default="hog", choices=DETECTORS, help="dlib face detector (default hog)")
    p.add_argument("--all_faces", action="store_true", help="every face, not only the largest")
    p.add_argument("--paste_check", action="store_true",
                   help="also write <stem>_pasted.png: the unedited crop pasted back into the photo")
    p.add_argument("--benchmark", action="store_true",
                   help="time detection + alignment + paste-back on scikit-image's 512-px astronaut photo")
    p.add_argument("--repeats", type=int, default=10, help="benchmark repetitions (median reported)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from utils.cli import main_guard

    @main_guard
    def run() -> int:
        args = _parser().parse_args(argv)
        if args.benchmark:
            t = _benchmark(args.size, args.align_recipe, args.aligned_size, max(1, args.repeats), args.detector)
            print(f"512x512 photo, {args.size}-px crop, recipe {args.align_recipe}, aligned at "
                  f"{args.aligned_size or args.size} px, {args.detector} detector, torch threads "
                  f"{torch.get_num_threads()}: detect {t['detect'] * 1e3:.0f} ms + align {t['align'] * 1e3:.0f} ms "
                  f"+ paste {t['paste'] * 1e3:.0f} ms = {t['total'] * 1e3:.0f} ms per photo (median of {args.repeats})")
            return 0
        if not args.photos:
            raise UserError("give photo files (or --benchmark)")
        aligner = FaceAligner(args.size, args.align_recipe, args.aligned_size, args.detector)
        out = Path(args.out)
        done, failed = 0, 0
        for path in args.photos:
            try:
                faces = aligner.align(path, all_faces=args.all_faces)
            except AlignError as e:
                print(f"error: {e}", file=sys.stderr)
                failed += 1
                continue
            out.mkdir(parents=True, exist_ok=True)
            stem = Path(path).stem
            pasted = None
            for f in faces:
                tag = f"_face{f.index}" if args.all_faces else ""
                Image.fromarray(f.image).save(out / f"{stem}{tag}_aligned.png")
                if args.paste_check:
                    pasted = f.paste(f.crop, into=pasted)
            if pasted is not None:
                Image.fromarray(pasted).save(out / f"{stem}_pasted.png")
            done += 1
        print(f"aligned {done} of {len(args.photos)} photo(s) into {out}"
              + (f"; {failed} failed" if failed else ""), file=sys.stderr)
        return 2 if failed else 0

    return run()


if __name__ == "__main__":
    sys.exit(main())
