"""Detections without a plausible face (issue 24): dlib fires on the folds of the astronaut's suit in
scikit-image's astronaut photo (saved as a JPEG, or scaled 2x), and its shape predictor fits
face-shaped landmarks to them; such detections are left out (and counted), real faces are kept."""
import numpy as np
import pytest

pytest.importorskip("dlib", reason="face alignment needs dlib (pip install dlib-bin)")
cv2 = pytest.importorskip("cv2")

from PIL import Image  # noqa: E402

from editing import align as A  # noqa: E402

#: The astronaut's face in the 512-px photo (x0, y0, x1, y1), as the HOG detector boxes it.
FACE = (179, 83, 267, 171)


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def suit_photos(astronaut, tmp_path_factory):
    """The astronaut photo where the HOG detector also fires on the suit: saved as a JPEG (PIL's
    default quality) and read back, and scaled 2x (1024 px); with the real face's box in each."""
    path = tmp_path_factory.mktemp("suit") / "astronaut.jpg"
    Image.fromarray(astronaut).save(path)
    big = cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    return {"jpeg": (A.load_photo(path), FACE), "2x": (big, tuple(2 * v for v in FACE))}


@pytest.mark.parametrize("kind", ["jpeg", "2x"])
def test_all_faces_keeps_exactly_the_real_face(suit_photos, kind):
    photo, face_box = suit_photos[kind]
    aligner = A.FaceAligner(32, "ffhq")
    found = aligner.detector.detect(photo)
    assert len(found) == 2 and sum(_iou(f.box, face_box) > 0.5 for f in found) == 1  # the suit fires too
    faces = aligner.align(photo, all_faces=True, name="astronaut.jpg")
    assert len(faces) == 1 and _iou(faces[0].box, face_box) > 0.5
    assert len(aligner.rejected) == 1 and "weak detection" in aligner.rejected[0]
    assert aligner.rejected_notice().startswith(
        "notice: astronaut.jpg: skipped 1 detection without a plausible face (weak detection (score 0.")
    # The largest detection is the suit's (or as large): without --all_faces the real face is taken.
    (largest,) = aligner.align(photo)
    assert _iou(largest.box, face_box) > 0.5


def test_a_photo_of_the_suit_alone_has_no_face(suit_photos):
    """The JPEG's lower part (the suit, no face): the only detection is refused, one line saying why."""
    photo, _ = suit_photos["jpeg"]
    suit = np.ascontiguousarray(photo[250:])
    aligner = A.FaceAligner(32, "ffhq")
    assert len(aligner.detector.detect(suit)) == 1
    with pytest.raises(A.NoFaceError, match=r"^suit.jpg: no plausible face found: 1 detection\(s\) skipped, weak "
                                            r"detection \(score 0\.\d+\) whose landmarks drift"):
        aligner.align(suit, all_faces=True, name="suit.jpg")


def test_real_faces_are_kept(astronaut):
    """Real faces under blur, noise, darkness, JPEG damage, rotation and a 170-px photo, and
    SynthFaces faces, are kept (some score below the weak-detection threshold: their landmarks hold
    still). Rotated by -25 degrees, the suit's detection is the largest; the real face is taken."""
    from data_loader.synthfaces import render, sample_factors

    def rot(a, deg):
        m = cv2.getRotationMatrix2D((256, 256), deg, 1)
        return cv2.warpAffine(a, m, (512, 512), borderMode=cv2.BORDER_REFLECT)

    rng = np.random.default_rng(0)
    variants = {
        "blur": cv2.GaussianBlur(astronaut, (0, 0), 3),
        "noise": np.clip(astronaut + rng.normal(0, 25, astronaut.shape), 0, 255).astype(np.uint8),
        "dark": (astronaut * 0.3).astype(np.uint8),
        "jpeg q10": cv2.imdecode(cv2.imencode(".jpg", astronaut, [cv2.IMWRITE_JPEG_QUALITY, 10])[1], 1),
        "170 px": cv2.resize(astronaut, (170, 170), interpolation=cv2.INTER_AREA),
        "rotated 15": rot(astronaut, 15),
        "rotated -25": rot(astronaut, -25),
    }
    for i in range(4):
        variants[f"synthfaces {i}"] = render(sample_factors(5, i), 256)
    aligner = A.FaceAligner(32, "ffhq", min_face_fraction=0.0)
    weak = 0
    for name, img in variants.items():
        img = np.ascontiguousarray(img)
        faces = aligner.align(img, all_faces=True)
        assert len(faces) == 1, name
        found = aligner.detector.detect(img)
        weak += sum(f.score < A.WEAK_SCORE and aligner.detector.implausible(img, f) is None for f in found)
    assert weak >= 2  # the threshold alone would have dropped real faces ("noise", "170 px")
    (face,) = aligner.align(np.ascontiguousarray(variants["rotated -25"]))
    assert face.box[1] < 200  # the head, not the suit below it


def test_geometry_problems():
    """Landmarks that no face has: swapped left and right, eyes on one spot, the mouth above the eyes."""
    face = A.FaceDetector("hog")
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut())
    (f,) = face.detect(photo)
    assert A.geometry_problem(f.landmarks, f.box) is None
    mirrored = f.landmarks.copy()
    mirrored[:, 0] = 2 * mirrored[:, 0].mean() - mirrored[:, 0]  # left and right swapped
    assert "out of order" in A.geometry_problem(mirrored, f.box)
    squeezed = f.landmarks.copy()
    squeezed[36:48] = squeezed[36:48].mean(0)
    assert "box sides apart" in A.geometry_problem(squeezed, f.box)
    flipped = f.landmarks.copy()
    flipped[:, 1] = 2 * flipped[:, 1].mean() - flipped[:, 1]  # upside down, left and right kept
    assert A.geometry_problem(flipped, f.box) is not None
