"""Face detection and 68-point landmarks with dlib (the ``dlib-bin`` wheel) and the models that the
``face-recognition-models`` package ships: the HOG frontal face detector (default) or the CNN (MMOD)
detector, and the 68-point shape predictor. Nothing is downloaded at run time.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from utils.errors import AlignError

DETECTORS = ("hog", "cnn")
DETECT_MAX_SIDE = 1024  # detection runs on a copy at most this large (landmarks on the full photo)
DLIB_PACKAGES = "pip install dlib-bin face-recognition-models"


class NoFaceError(AlignError):
    """No face was detected."""


class DlibMissingError(AlignError):
    """dlib or the landmark models are not installed."""


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
