"""The editing scripts on whole photos (``--align``): reconstruction.py, component_transfer.py and
attr_manipulation.py detect, align and paste back (editing/align/)."""
import numpy as np
import pytest

pytest.importorskip("dlib", reason="face alignment needs dlib (pip install dlib-bin)")
pytest.importorskip("cv2")

from PIL import Image  # noqa: E402

from editing import align as A  # noqa: E402
from tests.helpers import align_work, face_mask  # noqa: E402


@pytest.fixture(scope="module")
def photo(astronaut):
    return astronaut


@pytest.fixture(scope="module")
def work(tmp_path_factory, photo):
    """A tiny random-weight 32-px SynthFaces-marked checkpoint, the astronaut photo, a photo
    without a face and a canvas with two faces."""
    return align_work(tmp_path_factory.mktemp("align_scripts"), photo)


def test_reconstruction_align_writes_the_whole_photo(work, photo, tmp_path, capsys):
    import reconstruction

    out = tmp_path / "rec"
    rc = reconstruction.main(["--resume", work["ckpt"], "--data_path", work["photo"], "--align", "--save_aligned",
                              "--out", str(out), "--device", "cpu", "--grid"])
    assert rc == 0, capsys.readouterr().err
    result = np.asarray(Image.open(out / "astronaut.png"))
    assert result.shape == photo.shape
    face = A.FaceAligner(32, "ffhq").align(photo)[0]
    outside = face_mask(face) == 0
    assert np.array_equal(result[outside], photo[outside])
    assert Image.open(out / "astronaut_aligned.png").size == (32, 32)
    assert Image.open(out / "astronaut_aligned_edit.png").size == (32, 32)
    assert (out / "grid_000.png").is_file()

def test_scripts_go_on_after_a_photo_without_a_face(work, tmp_path, capsys):
    import reconstruction

    out = tmp_path / "rec"
    rc = reconstruction.main(["--resume", work["ckpt"], "--data_path", work["wall"], work["photo"], "--align",
                              "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and "wall.png: no face found" in errors[0], err
    assert "for 1 of 2 photo(s); 1 failed" in err[-1], err
    assert (out / "astronaut.png").is_file() and not (out / "wall.png").exists()
    rc = reconstruction.main(["--resume", work["ckpt"], "--data_path", work["photo"], "--save_aligned",
                              "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["error: --save_aligned needs --align"]

def test_component_transfer_aligns_targets_and_references_all_faces(work, tmp_path, capsys):
    import component_transfer

    out = tmp_path / "ct"
    rc = component_transfer.main(["--resume", work["ckpt"], "--target", work["two"], "--reference", work["photo"],
                                  "--component", "eyes", "mouth", "--align", "--all_faces", "--save_aligned",
                                  "--out", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    two = np.asarray(Image.open(work["two"]))
    for label in ("eyes", "mouth"):
        result = np.asarray(Image.open(out / f"two_{label}.png"))
        assert result.shape == two.shape
        changed = np.abs(result.astype(int) - two).sum(2) > 0
        assert changed[:, :560].any() and changed[:, 600:].any()  # both faces were edited
        assert (out / f"two_{label}_face1_aligned_edit.png").is_file()
    assert {p.name for p in out.glob("*_aligned.png")} == {"two_face0_aligned.png", "two_face1_aligned.png",
                                                          "astronaut_aligned.png"}

def test_attr_manipulation_align_sweep(work, tmp_path, capsys):
    """A boundary stored beforehand (fitted on random embeddings: the edit only has to move the face)."""
    import torch

    import attr_manipulation
    from editing import Editor, fit_boundary
    from editing.boundaries import boundary_path

    ed = Editor.from_checkpoint(work["ckpt"], device="cpu")
    z = torch.randn(60, 4, ed.comp_dim, generator=torch.Generator().manual_seed(0))
    b = fit_boundary(z, z[:, 3, 0] > 0, "Mouth_Slightly_Open", {"type": "test"}, ed.fingerprint())
    b.save(boundary_path(tmp_path / "b", "Mouth_Slightly_Open"))
    out = tmp_path / "attr"
    rc = attr_manipulation.main(["--resume", work["ckpt"], "--data_path", work["photo"], "--align",
                                 "--attr", "mouth_open", "--strengths=-4,4", "--boundary_dir", str(tmp_path / "b"),
                                 "--out", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    a, b = (np.asarray(Image.open(out / f"astronaut_s{s}.png")) for s in ("-4", "4"))
    assert a.shape == b.shape == (512, 512, 3) and not np.array_equal(a, b)
