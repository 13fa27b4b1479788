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


# ------------------------------------------------- no file written twice (--save_aligned), issue 24
@pytest.fixture
def writes(monkeypatch):
    """Counts the image files written (every image write goes through PIL's Image.save)."""
    import collections
    from pathlib import Path

    counts = collections.Counter()
    original = Image.Image.save

    def counting_save(self, fp, *args, **kwargs):
        counts[Path(fp).resolve()] += 1
        return original(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", counting_save)
    return counts


def _twice(counts):
    return sorted(p.name for p, n in counts.items() if n > 1)


def _notices(err):
    return [line for line in err.splitlines() if line.startswith("notice:")]


def test_save_aligned_never_overwrites_an_output(work, photo, tmp_path, capsys, writes):
    """Inputs a.png and a_aligned.png: the reconstruction of a_aligned.png is a_aligned.png, so the
    aligned crop of a.png takes its folder's name (one notice line); nothing is written twice."""
    import reconstruction

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo).save(src / "a.png")
    Image.fromarray(np.ascontiguousarray(photo[:, ::-1])).save(src / "a_aligned.png")
    writes.clear()
    out = tmp_path / "rec"
    rc = reconstruction.main(["--resume", work["ckpt"], "--data_path", str(src / "a.png"), str(src / "a_aligned.png"),
                              "--align", "--save_aligned", "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert _twice(writes) == []
    assert _notices(err) == [f"notice: photos share file names, so their --save_aligned files are named apart: "
                             f"{src / 'a.png'} -> in_a_aligned.png"]
    assert Image.open(out / "a_aligned.png").size == (512, 512)  # the reconstruction of a_aligned.png
    assert Image.open(out / "in_a_aligned.png").size == (32, 32)  # the aligned crop of a.png
    assert Image.open(out / "a_aligned_aligned.png").size == (32, 32)
    assert {p.name for p in out.iterdir()} == {"a.png", "a_aligned.png", "in_a_aligned.png", "a_aligned_aligned.png",
                                              "a_aligned_edit.png", "a_aligned_aligned_edit.png"}


def test_component_transfer_same_stems_in_other_folders(work, photo, tmp_path, capsys, writes):
    """Targets t1/a.png, t2/a.png and references r/a.png, r/b.png once all wrote a_aligned.png: each
    photo's crop now has its own name, decided before anything is written."""
    import component_transfer

    mirrored = np.ascontiguousarray(photo[:, ::-1])
    for rel, img in (("t1/a.png", photo), ("t2/a.png", mirrored), ("r/a.png", photo), ("r/b.png", mirrored)):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / rel)
    writes.clear()
    out = tmp_path / "ct"
    rc = component_transfer.main(["--resume", work["ckpt"], "--target", str(tmp_path / "t1/a.png"),
                                  str(tmp_path / "t2/a.png"), "--reference", str(tmp_path / "r/a.png"),
                                  str(tmp_path / "r/b.png"), "--component", "eyes", "--align", "--save_aligned",
                                  "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert _twice(writes) == []
    assert {p.name for p in out.iterdir()} == {"a_a.png", "a_b.png", "a_aligned.png", "t2_a_aligned.png",
                                              "r_a_aligned.png", "b_aligned.png", "a_a_aligned_edit.png",
                                              "a_b_aligned_edit.png"}
    crop = {n: np.asarray(Image.open(out / f"{n}_aligned.png")) for n in ("a", "t2_a", "r_a", "b")}
    assert np.array_equal(crop["a"], crop["r_a"]) and np.array_equal(crop["t2_a"], crop["b"])  # same photos
    assert not np.array_equal(crop["a"], crop["t2_a"])
    notice = _notices(err)
    assert len(notice) == 1 and "t2/a.png -> t2_a_aligned.png" in notice[0] and "r/a.png -> r_a_aligned.png" in notice[0]


def test_all_faces_tags_never_meet_another_photo(work, tmp_path, capsys, writes):
    """With --all_faces a photo of two faces writes <stem>_face1_*: a photo named two_face1.png once
    collided with it (aligned crop, edited crop and real/ crop); it now gets its own names."""
    import reconstruction

    src = tmp_path / "in"
    src.mkdir()
    Image.open(work["two"]).save(src / "two.png")
    Image.open(work["photo"]).save(src / "two_face1.png")
    writes.clear()
    out = tmp_path / "rec"
    rc = reconstruction.main(["--resume", work["ckpt"], "--data_path", str(src / "two.png"), str(src / "two_face1.png"),
                              "--align", "--all_faces", "--save_aligned", "--save_real", "--out", str(out),
                              "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert _twice(writes) == []
    names = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert {"two_face0_aligned.png", "two_face1_aligned.png", "in_two_face1_aligned.png",
            "two_face1_aligned_edit.png", "two_face1-2_aligned_edit.png", "real/two_face1.png",
            "real/in_two_face1.png"} <= names


def test_align_command_names_photos_apart(photo, tmp_path, capsys, writes):
    """python -m editing.align with d1/a.png and d2/a.png (and a photo inside --out whose name an
    output would take): every file is written once, no input is overwritten."""
    from editing.align.cli import main

    out = tmp_path / "out"
    for rel, img in (("d1/a.png", photo), ("d2/a.png", np.ascontiguousarray(photo[:, ::-1])),
                     ("out/b_aligned.png", photo), ("b.png", photo)):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / rel)
    kept = (out / "b_aligned.png").read_bytes()
    writes.clear()
    rc = main([str(tmp_path / p) for p in ("d1/a.png", "d2/a.png", "out/b_aligned.png", "b.png")]
              + ["--size", "32", "--out", str(out), "--paste_check"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert _twice(writes) == [] and (out / "b_aligned.png").read_bytes() == kept
    assert {p.name for p in out.iterdir()} == {
        "a_aligned.png", "a_pasted.png", "d2_a_aligned.png", "d2_a_pasted.png",  # d1/a.png, d2/a.png
        "b_aligned.png", "b_aligned_aligned.png", "b_aligned_pasted.png",  # the photo inside --out, and its files
        f"{tmp_path.name}_b_aligned.png", f"{tmp_path.name}_b_pasted.png"}  # b.png: b_aligned.png is taken
    notice = _notices(err)
    assert len(notice) == 1 and "d2/a.png -> d2_a_aligned.png" in notice[0], err
    assert not np.array_equal(np.asarray(Image.open(out / "a_aligned.png")),
                              np.asarray(Image.open(out / "d2_a_aligned.png")))


# ---------------------------------------------------- detections without a plausible face, issue 24
def test_all_faces_leaves_the_suit_alone(work, photo, tmp_path, capsys):
    """The astronaut photo saved as a JPEG: dlib also fires on the suit. With --all_faces only the
    real face is edited (the rest of the photo is the input's), with one notice line."""
    import reconstruction

    src = tmp_path / "astronaut.jpg"
    Image.fromarray(photo).save(src)
    jpeg = np.asarray(Image.open(src).convert("RGB"))
    out = tmp_path / "rec"
    rc = reconstruction.main(["--resume", work["ckpt"], "--data_path", str(src), "--align", "--all_faces",
                              "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert _notices(err) == [line for line in err.splitlines() if "without a plausible face" in line]
    assert len(_notices(err)) == 1 and f"{src}: skipped 1 detection without a plausible face" in err
    result = np.asarray(Image.open(out / "astronaut.png"))
    face = A.FaceAligner(32, "ffhq").align(jpeg)[0]
    assert face.box[1] < 200  # the head
    outside = face_mask(face) == 0
    assert np.array_equal(result[outside], jpeg[outside])  # the suit is untouched
