"""Face detection, alignment recipes and paste-back (editing/align/) on scikit-image's astronaut
photo and on SynthFaces faces; no downloaded photo."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("dlib", reason="face alignment needs dlib (pip install dlib-bin)")
cv2 = pytest.importorskip("cv2")

from PIL import Image  # noqa: E402

from editing import align as A  # noqa: E402
from model.boxes import image_boxes  # noqa: E402
from tests.helpers import ROOT, align_work, face_mask  # noqa: E402


@pytest.fixture(scope="module")
def photo(astronaut):
    return astronaut


@pytest.fixture(scope="module")
def detector():
    return A.FaceDetector("hog")


def _inside(points, box, tol=0.0):
    x0, y0, x1, y1 = box
    p = np.asarray(points)
    return bool(np.all((p[:, 0] >= x0 - tol) & (p[:, 0] <= x1 + tol) & (p[:, 1] >= y0 - tol) & (p[:, 1] <= y1 + tol)))

def _warp(img, angle, scale, shift, canvas):
    """Rotate (degrees, counter-clockwise) and scale about the centre, shift, into a canvas (W, H)."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += shift
    out = cv2.warpAffine(img, m, canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(90, 110, 130))
    return out, m

def test_detects_the_astronaut_face(photo, detector):
    faces = detector.detect(photo)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 220  # her face, not the flag or the shuttle
    lm = faces[0].landmarks
    assert lm.shape == (68, 2)
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean() and lm[36:48, 1].mean() < lm[48:60, 1].mean()

@pytest.mark.parametrize("recipe, aligned_size", [("ffhq", 256), ("celebahq", 1024)])
def test_aligned_landmarks_fall_in_component_boxes(photo, detector, recipe, aligned_size):
    """256-px crop (CelebA-HQ: the released models' path, 1024-px recipe then the loader's resize);
    landmarks detected again on the crop: every eye contour point in its eye box, the 12 outer mouth
    points in the mouth box, nose tip and nostrils in the nose box."""
    face = A.FaceAligner(256, recipe, aligned_size).align(photo)[0]
    assert face.crop.shape == (3, 256, 256) and -1 <= face.crop.min() and face.crop.max() <= 1
    again = detector.detect(face.image)
    assert len(again) == 1
    lm = again[0].landmarks + 0.5  # continuous coordinates
    boxes = image_boxes(256)
    assert _inside(lm[36:42], boxes[0]), lm[36:42]
    assert _inside(lm[42:48], boxes[1]), lm[42:48]
    assert _inside(lm[30:36], boxes[2]), lm[30:36]
    assert _inside(lm[48:60], boxes[3]), lm[48:60]
    # The transform maps the photo's landmarks to where the detector finds them on the crop.
    assert np.abs(face.crop_landmarks - lm).mean() < 2.0

@pytest.mark.parametrize("recipe", ["ffhq", "celebahq"])
def test_rotated_scaled_shifted_copy_aligns_to_the_same_crop(photo, recipe):
    """Tolerances (128-px crops): the two crops' geometry differs by under 1.5 % of the crop side
    (max over corners and centre; measured about 0.8 %, landmark jitter), and the crops differ by a
    mean absolute 8 gray levels (of 255) inside the face polygon (measured about 4)."""
    copy, m = _warp(photo, 15.0, 1.2, (260, 180), (900, 760))
    aligner = A.FaceAligner(128, recipe)
    a, b = aligner.align(photo)[0], aligner.align(copy)[0]
    g = np.array([[0, 0], [128, 0], [0, 128], [128, 128], [64, 64]], dtype=np.float64)
    in_copy = (a.transform.to_photo(g) - 0.5) @ m[:, :2].T + m[:, 2] + 0.5
    err = np.abs(b.transform.to_crop(in_copy) - g).max()
    assert err < 0.015 * 128, err
    poly = A.face_mask_polygon(a.crop_landmarks, 128)
    mask = np.zeros((128, 128), np.uint8)
    cv2.fillPoly(mask, [np.rint(poly).astype(np.int32)], 1)
    diff = np.abs(a.image.astype(np.float64) - b.image)[mask > 0]
    assert diff.mean() < 8.0, diff.mean()

@pytest.mark.parametrize("size, bound", [(256, 2.5), (64, 8.0)])
def test_paste_back_of_an_unedited_crop(photo, size, bound):
    """Outside the feathered mask no pixel changes; inside, the change is the resampling error of
    photo -> crop -> photo: a 256-px crop (finer than the 175-px face) changes the face by a mean
    of 1.6 gray levels (measured), a 64-px crop (the default model's size) by 5.6 (its blur)."""
    face = A.FaceAligner(size, "ffhq").align(photo)[0]
    out = face.paste(face.crop)
    assert out.shape == photo.shape and out.dtype == np.uint8
    (x0, y0, x1, y1), m = face.mask()
    full = np.zeros(photo.shape[:2], np.float32)
    full[y0:y1, x0:x1] = m
    assert np.array_equal(out[full == 0], photo[full == 0])
    assert (full == 1).sum() > 0.5 * (full > 0).sum()  # a real face region, not a sliver
    diff = np.abs(out.astype(np.float64) - photo)[full > 0]
    assert diff.mean() < bound, diff.mean()
    # An edit shows inside the mask only; the uint8 crop and the tensor crop paste alike.
    black = face.paste(np.zeros((size, size, 3), np.uint8))
    assert np.array_equal(black[full == 0], photo[full == 0])
    assert black[full == 1].max() == 0
    assert np.abs(face.paste(face.image).astype(int) - out).max() <= 1
    # Pasting only the change: no change, no pixel moves.
    assert np.array_equal(face.paste(face.crop, base=face.crop), photo)

def test_several_faces_largest_first_and_all_faces(photo):
    """Two faces (the photo and a smaller mirrored copy) in a 1100-px canvas (detection runs on a
    1024-px copy, landmarks on the full canvas)."""
    small = cv2.resize(np.ascontiguousarray(photo[:, ::-1]), (448, 448), interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 1100, 3), 200, np.uint8)
    canvas[40:552, 0:512] = photo
    canvas[100:548, 620:1068] = small
    aligner = A.FaceAligner(64, "ffhq")
    (largest,) = aligner.align(canvas)
    assert largest.box[0] < 512
    both = aligner.align(canvas, all_faces=True)
    assert [f.index for f in both] == [0, 1] and both[1].box[0] > 600
    out = both[1].paste(both[1].crop, into=both[0].paste(both[0].crop))
    assert out.shape == canvas.shape

def test_synthfaces_face_off_centre_lands_in_its_boxes():
    """A SynthFaces face rotated 10 degrees, scaled 0.9 and placed off-centre in a canvas: dlib
    finds the cartoon face; after FFHQ alignment the true eye, nose and mouth centres (from the
    face's factors) and the detected eye/mouth landmarks lie in their canonical boxes."""
    from data_loader.synthfaces.factors import sample_factors
    from data_loader.synthfaces.render import render
    from model.boxes import CANONICAL_BOXES

    aligner = A.FaceAligner(128, "ffhq")
    boxes = image_boxes(128)
    for index in range(3):
        f = sample_factors(5, index)
        n = 256
        canvas, m = _warp(render(f, n), 10.0, 0.9, (330, 170), (720, 540))
        face = aligner.align(canvas)[0]
        b = CANONICAL_BOXES
        centres = np.array([
            (0.5 * (b[0][0] + b[0][2]) + f.l_eye.dx, b[0][1] + 112 + f.l_eye.dy),
            (0.5 * (b[1][0] + b[1][2]) + f.r_eye.dx, b[1][1] + 112 + f.r_eye.dy),
            (512 + f.nose.dx, 600 + f.nose.dy),
            (512 + f.mouth.dx, 780 + f.mouth.dy),
        ]) * n / 1024  # render coordinates (continuous)
        in_canvas = (centres - 0.5) @ m[:, :2].T + m[:, 2] + 0.5
        in_crop = face.transform.to_crop(in_canvas)
        for c, box in zip(in_crop, boxes):
            assert _inside(c[None], box), (index, c, box)
        lm = face.crop_landmarks
        assert _inside(lm[36:42], boxes[0], tol=1.0) and _inside(lm[42:48], boxes[1], tol=1.0)
        assert _inside(lm[48:60], boxes[3], tol=1.0)

def test_too_small_too_large_and_bad_input_are_one_line_errors(photo, tmp_path):
    tiny = cv2.resize(photo, (240, 240), interpolation=cv2.INTER_AREA)
    with pytest.raises(A.FaceTooSmallError, match=r"face too small for the 256-px model .* spans \d+ px"):
        A.FaceAligner(256, "ffhq").align(tiny, name="tiny.png")
    p = tmp_path / "big.png"
    Image.fromarray(photo).save(p)
    with pytest.raises(A.PhotoTooLargeError, match=r"big.png: photo too large \(512x512"):
        A.FaceAligner(64, max_pixels=100_000).align(p)
    # PIL's own decompression-bomb limit does not get in the way: max_pixels is the limit.
    import PIL.Image
    old = PIL.Image.MAX_IMAGE_PIXELS
    PIL.Image.MAX_IMAGE_PIXELS = 1000
    try:
        assert A.load_photo(p).shape == (512, 512, 3)
        assert PIL.Image.MAX_IMAGE_PIXELS == 1000
    finally:
        PIL.Image.MAX_IMAGE_PIXELS = old
    with pytest.raises(A.AlignError, match="unknown alignment recipe 'wild'"):
        A.FaceAligner(64, "wild")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(A.AlignError, match="broken.jpg: cannot read image"):
        A.load_photo(tmp_path / "broken.jpg")
    face = A.FaceAligner(64).align(photo)[0]
    with pytest.raises(A.AlignError, match="must be 64x64"):
        face.paste(np.zeros((32, 32, 3), np.uint8))

def test_exif_orientation_is_applied(photo, tmp_path):
    p = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; displayed after a 90-degree clockwise turn
    Image.fromarray(np.ascontiguousarray(np.rot90(photo, 1))).save(p, exif=exif, quality=95)
    upright = A.load_photo(p)
    assert upright.shape == photo.shape
    assert np.abs(upright.astype(int) - photo).mean() < 3

def test_recipe_from_checkpoint_data():
    assert A.recipe_for({"data_name": "celebahq", "data_set": {"type": "CelebAHQDataset"}}) == "celebahq"
    assert A.recipe_for({"data_set": {"type": "FFHQDataset"}}) == "ffhq"
    assert A.recipe_for({"data_set": {"type": "SynthFaces"}}) == "ffhq"
    assert A.recipe_for("iafaces-celebahq-256") == "celebahq"
    assert A.recipe_for({}, size=256) == "celebahq" and A.recipe_for(None, size=1024) == "ffhq"
    assert A.aligned_size_for({"data_set": {"type": "CelebAHQDataset"}}, 256) == 1024
    assert A.aligned_size_for({"data_set": {"type": "SynthFaces"}}, 64) == 64

def test_missing_dlib_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)
    A._dlib_models.cache_clear()
    try:
        with pytest.raises(A.DlibMissingError, match="pip install dlib-bin face-recognition-models"):
            A.FaceDetector()
    finally:
        A._dlib_models.cache_clear()

@pytest.mark.slow
def test_cli_no_face_is_one_error_line_and_the_batch_goes_on(photo, tmp_path):
    noface = tmp_path / "wall.png"
    rng = np.random.default_rng(0)
    Image.fromarray(cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 3)).save(noface)
    good = tmp_path / "astronaut.png"
    Image.fromarray(photo).save(good)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "editing.align", str(noface), str(good), "--size", "64",
                        "--out", str(out), "--paste_check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "wall.png: no face found" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    assert "aligned 1 of 2 photo(s)" in r.stderr and "1 failed" in r.stderr
    assert Image.open(out / "astronaut_aligned.png").size == (64, 64)
    assert Image.open(out / "astronaut_pasted.png").size == (512, 512)


# ------------------------------------------------------------------- the Editor's alignment
@pytest.fixture(scope="module")
def work(tmp_path_factory, photo):
    """A tiny random-weight 32-px SynthFaces-marked checkpoint, the astronaut photo, a photo
    without a face and a canvas with two faces."""
    return align_work(tmp_path_factory.mktemp("align_scripts"), photo)


@pytest.mark.slow
def test_editor_align_api(work, photo):
    from editing import Editor

    ed = Editor.from_checkpoint(work["ckpt"], device="cpu")
    assert ed.align_recipe == "ffhq"  # SynthFaces-trained
    face = ed.align(work["photo"])
    assert face.crop.shape == (3, 32, 32) and face.landmarks.shape == (68, 2)
    assert face.transform.matrix.shape == (2, 3)
    content, comps = ed.encode(face.crop[None])
    edited = ed.decode(content, comps)  # [1, 3, 32, 32]
    out = face.paste(edited)
    assert out.shape == photo.shape
    outside = face_mask(face) == 0
    assert np.array_equal(out[outside], photo[outside]) and not np.array_equal(out, photo)
    assert len(ed.align_all(work["two"])) == 2
