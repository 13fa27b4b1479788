"""Faces of a photo aligned for a model, and their edits pasted back.

    from editing.align import FaceAligner
    aligner = FaceAligner(size=256, recipe="celebahq", aligned_size=1024)
    face = aligner.align("photo.jpg")[0]          # the largest face (all_faces=True: every face)
    face.crop                                       # [3, 256, 256] in [-1, 1], ready for the encoder
    out = face.paste(edited)                        # uint8 [H, W, 3]: the photo, face replaced

:class:`FaceAligner` reads the photo (:func:`load_photo`), detects faces and their landmarks
(:class:`FaceDetector`) and aligns them with a recipe (:func:`align_photo`); an
:class:`AlignedFace` pastes an edited crop back with a feathered face mask.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
from torch import Tensor

from model.boxes import CANONICAL_BOXES, REFERENCE_SIZE
from utils.errors import AlignError
from utils.image_io import array_to_tensor

from .detect import DETECTORS, FaceDetector, NoFaceError
from .photo import DEFAULT_MAX_PIXELS, PhotoLike, load_photo
from .recipes import BROWS, JAW, AlignTransform, align_photo, check_recipe, oriented_square

DEFAULT_MIN_FACE_FRACTION = 0.5  # the face's square must span >= this fraction of the model size


class FaceTooSmallError(AlignError):
    """The face is too small for the model's input size."""


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
        self.rejected: list[str] = []  # why the last align() left detections out (no plausible face)
        self._name: Optional[str] = None

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
        return AlignedFace(array_to_tensor(img), img, tf, lm, arr, tuple(float(v) for v in box), self.recipe, index,
                           self.feather)

    def align(self, photo: PhotoLike, all_faces: bool = False, name: Optional[str] = None) -> list[AlignedFace]:
        """Detect and align the largest face (``all_faces``: every face large enough for the model,
        largest first). Detections without a plausible face (:meth:`FaceDetector.implausible`) are
        left out and counted in ``rejected`` (the reasons; :meth:`rejected_notice` says it in one
        line); without ``all_faces`` only those larger than the face taken are looked at. Raises
        NoFaceError / FaceTooSmallError / PhotoTooLargeError, one line naming the file. With
        ``all_faces``, faces too small are skipped (``skipped`` lists them) unless none is large
        enough."""
        if name is None and isinstance(photo, (str, os.PathLike)):
            name = str(photo)
        arr = load_photo(photo, self.max_pixels)
        found = self.detector.detect(arr)
        where = f"{name}: " if name else ""
        self.skipped: list[str] = []
        self.rejected: list[str] = []
        self._name = name
        faces = []
        for f in found:
            why = self.detector.implausible(arr, f)
            if why:
                self.rejected.append(why)
                continue
            faces.append(f)
            if not all_faces:
                break
        if not faces:
            if found:
                raise NoFaceError(f"{where}no plausible face found: {len(found)} detection(s) skipped, "
                                  f"{self.rejected[0]} ({arr.shape[1]}x{arr.shape[0]} photo, {self.detector_name} "
                                  "detector)")
            raise NoFaceError(f"{where}no face found ({arr.shape[1]}x{arr.shape[0]} photo, {self.detector_name} "
                              "detector; faces need to be roughly frontal and at least about 40 px wide)")
        out: list[AlignedFace] = []
        first_error: Optional[FaceTooSmallError] = None
        for i, f in enumerate(faces):
            try:
                out.append(self.align_landmarks(arr, f.landmarks, i, f.box, name))
            except FaceTooSmallError as e:
                first_error = first_error or e
                self.skipped.append(str(e))
        if not out:
            raise first_error  # type: ignore[misc]
        return out

    def rejected_notice(self) -> Optional[str]:
        """One line on the detections the last :meth:`align` left out as implausible, or None."""
        if not self.rejected:
            return None
        where = f"{self._name}: " if getattr(self, "_name", None) else ""
        n = len(self.rejected)
        return (f"notice: {where}skipped {n} detection{'s' if n > 1 else ''} without a plausible face "
                f"({self.rejected[0]}{'; ...' if n > 1 else ''})")
