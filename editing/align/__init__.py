"""Edit your own photos: find faces, align them exactly like the model's training data, paste back.

    from editing.align import FaceAligner
    aligner = FaceAligner(size=256, recipe="celebahq", aligned_size=1024)
    face = aligner.align("photo.jpg")[0]          # the largest face (all_faces=True: every face)
    face.crop                                       # [3, 256, 256] in [-1, 1], ready for the encoder
    out = face.paste(edited)                        # uint8 [H, W, 3]: the photo, face replaced

One module per role:

- :mod:`.recipes` -- the alignment recipes (``ffhq``, ``celebahq``): which recipe a checkpoint's
  data needs, the oriented square from 68 landmarks, :func:`align_photo` and its
  :class:`AlignTransform` (crop <-> photo coordinates);
- :mod:`.detect` -- dlib face detection and landmarks (:class:`FaceDetector`), and which detections
  hold no plausible face (:meth:`FaceDetector.implausible`: landmark geometry, weak score with
  drifting landmarks); :meth:`FaceAligner.align` leaves those out and counts them;
- :mod:`.photo` -- photos in (:func:`load_photo`, through :func:`utils.image_io.open_rgb`);
- :mod:`.paste` -- :class:`FaceAligner` (detect + align) and :class:`AlignedFace` (paste back);
- :mod:`.cli` -- ``python -m editing.align``.
"""
from utils.errors import AlignError

from .detect import (DETECT_MAX_SIDE, DETECTORS, DLIB_PACKAGES, MAX_LANDMARK_DRIFT, WEAK_SCORE, DlibMissingError, Face,
                     FaceDetector, NoFaceError, _dlib_models, geometry_problem, model_file)
from .paste import DEFAULT_MIN_FACE_FRACTION, AlignedFace, FaceAligner, FaceTooSmallError, face_mask_polygon
from .photo import DEFAULT_MAX_PIXELS, PhotoLike, PhotoTooLargeError, load_photo
from .recipes import (BROWS, JAW, L_EYE, MOUTH_LEFT, MOUTH_RIGHT, R_EYE, RECIPES, AlignTransform, align_photo,
                      aligned_size_for, check_recipe, oriented_square, recipe_for, recipe_points)

__all__ = ["AlignError", "AlignTransform", "AlignedFace", "BROWS", "DEFAULT_MAX_PIXELS", "DEFAULT_MIN_FACE_FRACTION",
           "DETECTORS", "DETECT_MAX_SIDE", "DLIB_PACKAGES", "DlibMissingError", "Face", "FaceAligner", "FaceDetector",
           "FaceTooSmallError", "JAW", "L_EYE", "MAX_LANDMARK_DRIFT", "MOUTH_LEFT", "MOUTH_RIGHT", "NoFaceError",
           "PhotoLike", "WEAK_SCORE", "geometry_problem",
           "PhotoTooLargeError", "RECIPES", "R_EYE", "align_photo", "aligned_size_for", "check_recipe",
           "face_mask_polygon", "load_photo", "model_file", "oriented_square", "recipe_for", "recipe_points"]
