"""Face detection and 68-point landmarks with dlib (the ``dlib-bin`` wheel) and the models that the
``face-recognition-models`` package ships: the HOG frontal face detector (default) or the CNN (MMOD)
detector, and the 68-point shape predictor. Nothing is downloaded at run time.

dlib's detectors also fire on things that are not faces (a spacesuit's folds in scikit-image's
astronaut photo at 0.75x and at 2x and more), and the shape predictor fits a face-shaped set of
landmarks to anything. :meth:`FaceDetector.implausible` tells them apart (see
:func:`geometry_problem` and :func:`landmark_drift`): a detection is not a face when its landmarks
break a face's geometry, or when it is weak (score below :data:`WEAK_SCORE`) *and* its landmarks
do not hold still when the box moves (median shift above :data:`MAX_LANDMARK_DRIFT`). On real
faces the landmarks barely move (0.4-2 % of the box side: blurred, noisy, dark, JPEG-damaged,
170-px photos, SynthFaces renders); on the suit they move 11-14 %.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from utils.errors import AlignError

DETECTORS = ("hog", "cnn")
DETECT_MAX_SIDE = 1024  # detection runs on a copy at most this large (landmarks on the full photo)
DLIB_PACKAGES = "pip install dlib-bin face-recognition-models"
#: Detections scoring below this (dlib's HOG score or the CNN's confidence; real faces score about
#: 0.3-2, false ones 0.1-0.2) are kept only when their landmarks hold still (MAX_LANDMARK_DRIFT).
WEAK_SCORE = 0.5
#: Largest median landmark shift, as a fraction of the box side, of a weak detection kept as a face
#: when its box is moved by 10 % or scaled by 0.85 / 1.2 (real faces 0.004-0.02, false ones >= 0.1).
MAX_LANDMARK_DRIFT = 0.05
#: The box moves of :func:`landmark_drift`: (dx, dy, scale), shifts as fractions of the box side.
DRIFT_MOVES = ((0.1, 0.0, 1.0), (-0.1, 0.0, 1.0), (0.0, 0.1, 1.0), (0.0, -0.1, 1.0), (0.0, 0.0, 1.2),
               (0.0, 0.0, 0.85))


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

    @property
    def side(self) -> float:
        """The box's side (square root of its area)."""
        return float(np.sqrt(self.area))


def geometry_problem(landmarks: np.ndarray, box: Sequence[float]) -> Optional[str]:
    """What makes 68 landmarks ([68, 2]) in ``box`` (x0, y0, x1, y1) impossible for a face, or None.

    In the face's own frame (x along the line from the image-left eye to the image-right eye, y
    perpendicular to it, pointing to the chin; any in-plane rotation): the eyes are 0.2-0.8 box
    sides apart, the nose tip lies below the eyes and above the mouth, the mouth 0.5-2 eye
    distances below the eyes and at most 0.75 of one to the side. Swapped left and right eyes put
    the mouth above the eyes in that frame."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        return "no usable landmarks"
    side = float(np.sqrt(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)))
    le, re = lm[36:42].mean(0), lm[42:48].mean(0)
    e = re - le
    d = float(np.hypot(*e))
    if side <= 0 or not 0.2 * side <= d <= 0.8 * side:
        return f"eyes {d / side if side > 0 else float('inf'):.2f} box sides apart (a face: 0.2-0.8)"
    u = e / d
    n = np.array([-u[1], u[0]])  # towards the chin when the image-left eye is on the left
    mid = (le + re) / 2
    nose, mouth = float((lm[30] - mid) @ n), float((lm[48:68].mean(0) - mid) @ n)
    if not 0 < nose < mouth:
        return "eyes, nose and mouth out of order (or left and right swapped)"
    if not 0.5 * d <= mouth <= 2.0 * d:
        return f"mouth {mouth / d:.2f} eye distances below the eyes (a face: 0.5-2)"
    if abs(float((lm[48:68].mean(0) - mid) @ u)) > 0.75 * d:
        return "mouth off the face's axis"
    return None


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

    def landmark_drift(self, photo: np.ndarray, face: Face) -> float:
        """How far the landmarks of ``face`` move when its box moves (:data:`DRIFT_MOVES`): the
        median over the moves of the mean landmark shift, as a fraction of the box side."""
        x0, y0, x1, y1 = face.box
        w, h = x1 - x0, y1 - y0
        shifts = []
        for dx, dy, sc in DRIFT_MOVES:
            cx, cy = (x0 + x1) / 2 + dx * w, (y0 + y1) / 2 + dy * h
            lm = self.landmarks(photo, (cx - w * sc / 2, cy - h * sc / 2, cx + w * sc / 2, cy + h * sc / 2))
            shifts.append(float(np.linalg.norm(lm - face.landmarks, axis=1).mean()) / max(face.side, 1.0))
        return float(np.median(shifts))

    def implausible(self, photo: np.ndarray, face: Face) -> Optional[str]:
        """Why detection ``face`` of ``photo`` is not a plausible face, or None (see the module):
        impossible landmark geometry, or a weak score with landmarks that drift."""
        why = geometry_problem(face.landmarks, face.box)
        if why:
            return why
        if face.score < WEAK_SCORE:
            drift = self.landmark_drift(np.ascontiguousarray(photo), face)
            if drift > MAX_LANDMARK_DRIFT:
                return (f"weak detection (score {face.score:.2f}) whose landmarks drift {drift:.0%} of the box "
                        "when it moves")
        return None

    def detect(self, photo: np.ndarray) -> list[Face]:
        """All detections of ``photo`` (uint8 [H, W, 3] RGB), largest first, plausible or not
        (:meth:`implausible` tells)."""
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
