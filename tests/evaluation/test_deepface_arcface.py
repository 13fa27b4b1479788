"""DeepFace's ArcFace Arc-dis without TensorFlow (evaluation.deepface_arcface), checked against the real
DeepFace 0.0.75 (TensorFlow 2.12, OpenCV 4.11) on seeded random weights in DeepFace's exact weight layout:
tests/data/deepface_golden.* (made by tests/data/deepface_make_golden.py, see deepface_README.md)."""
import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from evaluation import deepface_arcface as dfa
from tests import helpers
from utils.errors import MetricError

DATA = Path(__file__).resolve().parents[1] / "data"
HAAR = DATA / "deepface_haarcascades"


def _generator():
    spec = importlib.util.spec_from_file_location("deepface_make_golden", DATA / "deepface_make_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GEN = _generator()
GOLDEN = json.loads(GEN.GOLDEN_JSON.read_text())


def write_weights(path: Path, layout=None, override=None) -> Path:
    """``arcface_weights.h5`` in the layout Keras' ``save_weights`` wrote (recorded in the golden data),
    every weight filled by the generator's seeded rule; ``override``: {weight name: array}."""
    import h5py

    layout = layout or GOLDEN["h5_layout"]
    override = override or {}
    with h5py.File(path, "w") as f:
        for k, v in GOLDEN["h5_root_attrs"].items():
            f.attrs[k] = v
        f.attrs["layer_names"] = [entry["layer"] for entry in layout]
        for entry in layout:
            group = f.create_group(entry["layer"])
            group.attrs["weight_names"] = [w["name"] for w in entry["weights"]]
            for w in entry["weights"]:
                group.create_dataset(w["name"], data=override.get(w["name"], GEN.fill(w["name"], w["shape"])))
    return path


@pytest.fixture(scope="module")
def golden_arrays():
    z = np.load(GEN.GOLDEN_NPZ)
    return z["inputs"], z["embeddings"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_weights(tmp_path_factory.mktemp("deepface") / "arcface_weights.h5")


@pytest.fixture(scope="module")
def port(weights):
    return dfa.DeepFaceArcFace(weights, haar_dir=HAAR)


@pytest.fixture(scope="module")
def preprocessed(port):
    return {n: port.detector.preprocess(dfa.read_bgr(GEN.IMAGES / f"{n}.png")) for n in GOLDEN["images"]}


def test_fill_rule_is_the_one_the_golden_data_was_made_with():
    for name, first in GOLDEN["fill_fingerprint"].items():
        shape = next(w["shape"] for e in GOLDEN["h5_layout"] for w in e["weights"] if w["name"] == name)
        np.testing.assert_array_equal(GEN.fill(name, shape).ravel()[:3], np.float32(first))


def test_keras_layout_is_the_ports_layout():
    """The weighted layers Keras saved for DeepFace's model are the port's ResNet34 layers (same names,
    same shapes) plus the three head layers."""
    saved = {e["layer"]: {w["name"].split("/")[-1].split(":")[0]: tuple(w["shape"]) for w in e["weights"]}
             for e in GOLDEN["h5_layout"] if e["weights"]}
    for name, kind, cin, cout in dfa.keras_layers():
        assert saved.pop(name) == dfa._expected_shapes(kind, cin, cout), name
    assert sorted(saved.values(), key=str) == sorted(
        (dfa._expected_shapes(k, cin, cout) for _, k, cin, cout in dfa.HEAD_LAYERS), key=str)
    assert "embedding" in saved


@pytest.mark.slow
def test_network_matches_deepface_embeddings(port, golden_arrays):
    inputs, embeddings = golden_arrays
    found = [i for i, n in enumerate(GOLDEN["images"]) if GOLDEN["detected"][n]]
    got = port.embed(list(inputs[found].astype(np.float32) / 255))
    assert got.shape == (len(found), 512)
    np.testing.assert_allclose(got, embeddings[found], atol=1e-4, rtol=0)
    assert np.abs(embeddings[found]).max() > 1.0  # the tolerance is small against the values


@pytest.mark.slow
def test_detection_alignment_and_preprocessing_match_deepface(port, preprocessed, golden_arrays):
    inputs, _ = golden_arrays
    assert set(GOLDEN["detected"].values()) == {True, False}
    for i, name in enumerate(GOLDEN["images"]):
        assert (preprocessed[name] is not None) == GOLDEN["detected"][name], name
        if GOLDEN["detected"][name]:
            assert preprocessed[name].shape == (112, 112, 3) and preprocessed[name].dtype == np.float32
            np.testing.assert_array_equal(preprocessed[name], inputs[i].astype(np.float32) / 255, err_msg=name)
    for name in ("astro_rot20", "synth3"):
        assert port.detector.faces(dfa.read_bgr(GEN.IMAGES / f"{name}.png")).tolist() == [GOLDEN["regions"][name]]


def test_align_face_eye_choice_and_angle():
    """The angles worked out by hand: the eye triangle is right-angled, so the cosine rule gives
    atan2 of its legs."""
    from PIL import Image

    face = np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8)
    eyes = np.array([(5, 20, 10, 10), (40, 25, 10, 10), (30, 5, 20, 20)])  # keys |(x-w)(y-h)|: 50, 450, 150

    def rotated(angle):
        return np.array(Image.fromarray(face).rotate(angle))

    # sorted: eyes 1 and 2; left centre (40, 15), right (45, 30): legs 15 and 5, counter-clockwise
    np.testing.assert_array_equal(dfa.align_face(face, eyes), rotated(np.degrees(np.arctan2(15, 5))))
    # unsorted (DeepFace <= 0.0.73): eyes 0 and 1; left (10, 25), right (45, 30): legs 5 and 35
    np.testing.assert_array_equal(dfa.align_face(face, eyes, sort_eyes=False), rotated(np.degrees(np.arctan2(5, 35))))
    # left eye lower than the right one: clockwise by 90 - the cosine-rule angle
    low_left = np.array([(5, 25, 10, 10), (40, 20, 10, 10)])  # centres (10, 30), (45, 25)
    np.testing.assert_array_equal(dfa.align_face(face, low_left), rotated(-np.degrees(np.arctan2(5, 35))))
    assert dfa.align_face(face, eyes[:1]) is face


def test_preprocess_keeps_the_aspect_and_pads_black():
    face = np.full((50, 100, 3), 200, np.uint8)
    x = dfa.preprocess_face(face)
    assert x.shape == (112, 112, 3) and x.dtype == np.float32
    rows = np.nonzero(x[:, 50, 0])[0]
    assert (rows.min(), rows.max()) == (28, 83)  # 56 rows of face centred in 112
    assert x[28:84].min() == pytest.approx(200 / 255) and x[:28].max() == 0 and x[84:].max() == 0


@pytest.mark.slow
def test_verify_distances_match_deepface(port, preprocessed):
    names = sorted({n for p in GOLDEN["pairs"] for n in (p["img1"], p["img2"]) if preprocessed[n] is not None})
    emb = dict(zip(names, port.embed([preprocessed[n] for n in names])))
    for pair in GOLDEN["pairs"]:
        a, b = pair["img1"], pair["img2"]
        if pair["distance"] is None:
            assert preprocessed[a] is None or preprocessed[b] is None
        else:
            assert dfa.cosine_distance(emb[a], emb[b]) == pytest.approx(pair["distance"], abs=1e-5)
    spread = [p["distance"] for p in GOLDEN["pairs"] if p["distance"] is not None]
    assert max(spread) - min(spread) > 0.05
    first = next(p for p in GOLDEN["pairs"] if p["distance"] is not None)
    none = next(p for p in GOLDEN["pairs"] if p["distance"] is None)
    assert port.verify(GEN.IMAGES / f"{first['img1']}.png", GEN.IMAGES / f"{first['img2']}.png") == \
        pytest.approx(first["distance"], abs=1e-5)
    assert port.verify(GEN.IMAGES / f"{none['img1']}.png", GEN.IMAGES / f"{none['img2']}.png") is None


def test_cosine_distance_is_deepfaces_formula():
    a, b = np.array([1.0, 2.0, 2.0]), np.array([2.0, 0.0, 1.0])
    assert dfa.cosine_distance(a, b) == pytest.approx(1 - 4 / (3 * np.sqrt(5)), abs=1e-15)
    assert dfa.cosine_distance(a, 3 * a) == pytest.approx(0.0, abs=1e-12)


def test_group_rectangles_as_opencv():
    """Values worked out by hand from OpenCV's groupRectangles rules."""
    cluster = [(100, 100, 50, 50), (101, 100, 50, 50), (102, 101, 52, 52)]
    lone = [(10, 10, 30, 30)]
    # averages: x = 303/3 = 101, y = 301/3 = 100.33 -> 100, w = h = 152/3 = 50.67 -> 51
    assert dfa.group_rectangles(cluster + lone, 2) == [(101, 100, 51, 51)]
    assert dfa.group_rectangles(cluster + lone, 3) == []  # a cluster needs more than 3 members
    assert dfa.group_rectangles(cluster + lone, 0) == cluster + lone  # no grouping
    # a 3-member cluster inside a 6-member one is dropped (n2 > max(3, n1))
    big = [(95, 95, 70, 70)] * 6
    small = [(110, 110, 30, 30)] * 3
    assert dfa.group_rectangles(small + big, 2) == [(95, 95, 70, 70)]
    # half-way averages round to even as cvRound: x = (0 + 1) / 2 = 0.5 -> 0, y = (3 + 4) / 2 = 3.5 -> 4
    assert dfa.group_rectangles([(0, 3, 40, 40), (1, 4, 40, 40)], 1) == [(0, 4, 40, 40)]


def test_haar_port_matches_opencv_where_available():
    """Only with an OpenCV that still has CascadeClassifier (4.x or opencv-contrib): the same boxes."""
    if not hasattr(cv2, "CascadeClassifier"):
        pytest.skip("this OpenCV has no CascadeClassifier (OpenCV 5 without contrib)")
    import gzip
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / dfa.FACE_CASCADE
        xml.write_bytes(gzip.decompress((HAAR / (dfa.FACE_CASCADE + ".gz")).read_bytes()))
        ref = cv2.CascadeClassifier(str(xml))
        ours = dfa.HaarCascade.load(xml)
    for name in ("astro_crop", "synth3", "coffee"):
        img = dfa.read_bgr(GEN.IMAGES / f"{name}.png")
        expect = np.array(ref.detectMultiScale(img, 1.1, 3), np.int32).reshape(-1, 4)
        assert ours.detect(img, 1.1, 3).tolist() == expect.tolist(), name


# ------------------------------------------------------------------------------ the release's lists

def test_release_exclusion_keeps_ids_after_a_removed_one():
    ids, excluded = ["a", "b", "c", "d", "e", "f"], {"b", "c", "e", "f"}
    assert dfa.release_exclusion(ids, excluded) == ["a", "c", "d", "f"]  # c and f follow a removed id
    assert dfa.release_exclusion(ids, excluded, pop_quirk=False) == ["a", "d"]
    assert ids == ["a", "b", "c", "d", "e", "f"]  # the input is not changed


def test_release_exclusion_on_the_official_lists():
    lists = helpers.REFERENCE / "official_eval_lists"
    if not lists.is_dir():
        pytest.skip("reference lists not found")
    excluded = dfa.read_id_list(dfa.find_not_detected(lists, "iafaces"))
    for attr in ("mouth_open", "beard", "bushy", "male"):
        ids = dfa.read_id_list(lists / "attr_lists" / f"{dfa.release_list_name(attr)}.txt")
        kept = dfa.release_exclusion(ids, excluded)
        assert kept == helpers.release_removal(ids, set(excluded)), attr
        strict = dfa.release_exclusion(ids, excluded, pop_quirk=False)
        assert set(strict) == set(ids) - set(excluded)
        assert len(kept) >= len(strict)
    ids = dfa.read_id_list(lists / "attr_lists" / "mouth_close.txt")
    survivors = set(dfa.release_exclusion(ids, excluded)) & set(excluded)
    assert survivors  # the quirk leaves some listed ids in for this list
    assert all(ids[ids.index(s) - 1] in excluded for s in survivors)


def test_release_list_table():
    assert dfa.release_list_name("mouth_open") == "mouth_close"
    assert dfa.release_list_name("beard") == "no_beard"
    assert dfa.release_list_name("big_nose") == "pointy_nose"
    assert dfa.release_list_name("bushy") == "arched" and dfa.release_list_name("arched") == "bushy"
    assert dfa.release_list_name("bushy", swap_bushy_arched=False) == "no_bushy"
    assert dfa.release_list_name("arched", swap_bushy_arched=False) == "no_arched"
    assert dfa.release_list_name("male", swap_bushy_arched=False) == "female"
    with pytest.raises(MetricError, match="no Arc-dis list for 'mustache'"):
        dfa.release_list_name("mustache")


class StubVerifier:
    """Distances by file stem: a float, or None (no face)."""

    def __init__(self, table):
        self.table, self.seen = table, []

    def verify_many(self, pairs):
        self.seen += [(a.name, b.name) for a, b in pairs]
        return [self.table[a.stem] for a, _ in pairs]


def _lists(tmp_path, ids, excluded, list_name="mouth_close"):
    (tmp_path / "lists" / "attr_lists").mkdir(parents=True)
    (tmp_path / "lists" / "not_detecetd").mkdir()
    (tmp_path / "lists" / "attr_lists" / f"{list_name}.txt").write_text("\n".join(ids) + "\n\n")
    (tmp_path / "lists" / "not_detecetd" / "iafaces.txt").write_text("\n".join(excluded) + "\n")
    for folder in ("real", "fake"):
        (tmp_path / folder).mkdir()
        for i in ids:
            (tmp_path / folder / f"{i}.png").write_bytes(b"")
    return tmp_path / "lists"


def test_release_arc_dis_counts_and_mean(tmp_path):
    ids = ["11", "12", "13", "14", "15", "16"]
    lists = _lists(tmp_path, ids, ["12", "13", "99"])
    stub = StubVerifier({"11": 0.25, "13": None, "14": 0.5, "15": None, "16": 0.75})
    r = dfa.release_arc_dis(tmp_path / "real", tmp_path / "fake", "mouth_open", lists, verifier=stub)
    # 12 removed, 13 stays (right after 12: the release's loop); 13 and 15 have no face
    assert stub.seen == [(f"{i}.png", f"{i}.png") for i in ("11", "13", "14", "15", "16")]
    assert (r.n_listed, r.n_excluded_by_list, r.n_dropped_undetected, r.n_used) == (6, 1, 2, 3)
    assert r.mean == pytest.approx(0.5)
    assert r.release_lines() == ["Total faces: 5", "Not detected: 2", "Similarity on detected faces: 0.5"]
    assert r.distances == {"11": 0.25, "13": None, "14": 0.5, "15": None, "16": 0.75}
    strict = dfa.release_arc_dis(tmp_path / "real", tmp_path / "fake", "mouth_open", lists, pop_quirk=False,
                                 verifier=StubVerifier(stub.table))
    assert (strict.n_excluded_by_list, strict.n_dropped_undetected, strict.n_used) == (2, 1, 3)
    everything = dfa.release_arc_dis(tmp_path / "real", tmp_path / "fake", "mouth_open", lists, exclude_listed=False,
                                     verifier=StubVerifier({**stub.table, "12": 1.0}))
    assert (everything.n_excluded_by_list, everything.n_used) == (0, 4)
    assert everything.mean == pytest.approx(2.5 / 4)


def test_release_arc_dis_uses_the_swapped_list_and_refuses_missing_images(tmp_path):
    lists = _lists(tmp_path, ["7"], [], list_name="arched")
    r = dfa.release_arc_dis(tmp_path / "real", tmp_path / "fake", "bushy", lists, verifier=StubVerifier({"7": 0.1}))
    assert Path(r.list_file).name == "arched.txt"
    with pytest.raises(MetricError, match="no_bushy.txt"):
        dfa.release_arc_dis(tmp_path / "real", tmp_path / "fake", "bushy", lists, swap_bushy_arched=False,
                            verifier=StubVerifier({}))
    (tmp_path / "fake" / "7.png").unlink()
    with pytest.raises(MetricError, match=r"fake.7\.png is missing"):
        dfa.release_arc_dis(tmp_path / "real", tmp_path / "fake", "bushy", lists, verifier=StubVerifier({}))
    (tmp_path / "fake" / "7.png").write_bytes(b"")
    with pytest.raises(MetricError, match="no face was detected"):
        dfa.release_arc_dis(tmp_path / "real", tmp_path / "fake", "bushy", lists, verifier=StubVerifier({"7": None}))


@pytest.mark.slow
def test_release_arc_dis_end_to_end_with_the_port(tmp_path, port):
    pairs = {"1": ("astro_crop", "astro_dark"), "2": ("synth0", "synth8"), "3": ("astro_crop", "coffee")}
    lists = _lists(tmp_path, list(pairs), [])
    for i, (a, b) in pairs.items():
        shutil.copy(GEN.IMAGES / f"{a}.png", tmp_path / "real" / f"{i}.png")
        shutil.copy(GEN.IMAGES / f"{b}.png", tmp_path / "fake" / f"{i}.png")
    r = dfa.release_arc_dis(tmp_path / "real", tmp_path / "fake", "mouth_open", lists, verifier=port)
    want = [p["distance"] for p in GOLDEN["pairs"] if (p["img1"], p["img2"]) in list(pairs.values())[:2]]
    assert (r.n_used, r.n_dropped_undetected) == (2, 1)
    assert r.mean == pytest.approx(sum(want) / 2, abs=1e-5)


# ---------------------------------------------------------------------------------- refusals
def test_missing_weights_name_the_file_and_the_flag(tmp_path, monkeypatch):
    with pytest.raises(MetricError) as e:
        dfa.load_deepface_arcface(tmp_path / "nowhere.h5")
    msg = str(e.value)
    assert "\n" not in msg and "arcface_weights.h5" in msg and "--deepface_arcface" in msg and "nowhere.h5" in msg
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    with pytest.raises(MetricError, match="arcface_weights.h5.*--deepface_arcface PATH"):
        dfa.load_deepface_arcface(None)


def test_cli_missing_weights_is_one_error_line(tmp_path, capsys):
    lists = _lists(tmp_path, ["1"], [])
    code = dfa.main(["--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--attr", "mouth_open",
                     "--lists", str(lists), "--deepface_arcface", str(tmp_path / "missing.h5"),
                     "--deepface_haar", str(HAAR)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "arcface_weights.h5" in err[0]


def test_missing_cascades_name_the_files_and_the_flag(tmp_path):
    with pytest.raises(MetricError) as e:
        dfa.find_cascades(tmp_path)
    msg = str(e.value)
    assert dfa.FACE_CASCADE in msg and dfa.EYE_CASCADE in msg and "--deepface_haar" in msg and "\n" not in msg
    face, eye = dfa.find_cascades(HAAR)
    assert face.name == dfa.FACE_CASCADE + ".gz" and eye.name == dfa.EYE_CASCADE + ".gz"
    (tmp_path / dfa.FACE_CASCADE).write_text("<opencv_storage><cascade><stageType>BOOST</stageType>"
                                             "</cascade></opencv_storage>")
    with pytest.raises(MetricError, match="not a boosted stump Haar cascade"):
        dfa.HaarCascade.load(tmp_path / dfa.FACE_CASCADE)


def test_weight_files_of_another_shape_or_kind_are_refused(tmp_path):
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(MetricError, match="cannot read as a Keras HDF5 weight file"):
        dfa.load_deepface_arcface(tmp_path / "text.h5")

    def layer(name, **shapes):
        return {"layer": name, "weights": [{"name": f"{name}/{k}:0", "shape": list(v)} for k, v in shapes.items()]}

    bn = {k: (4,) for k in ("gamma", "beta", "moving_mean", "moving_variance")}
    head = [layer("batch_normalization", **bn), layer("dense", kernel=(2, 2), bias=(2,)), layer("embedding", **bn)]
    write_weights(tmp_path / "narrow.h5", layout=[layer("conv1_conv", kernel=(3, 3, 3, 32))] + head)
    with pytest.raises(MetricError, match=r"layer conv1_conv holds \{'kernel': \(3, 3, 3, 32\)\}"):
        dfa.load_deepface_arcface(tmp_path / "narrow.h5")
    write_weights(tmp_path / "headless.h5", layout=[layer("conv1_conv", kernel=(3, 3, 3, 64))] + head[:1])
    with pytest.raises(MetricError, match="not DeepFace's ArcFace weights"):
        dfa.load_deepface_arcface(tmp_path / "headless.h5")
