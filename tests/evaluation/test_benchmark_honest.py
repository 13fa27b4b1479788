"""The SynthFaces benchmark is honest: the exact ground truth (oracle) meets every target, doing
nothing meets no editing target, and an untrained model meets none either."""
import math

import numpy as np
import pytest
import torch

from data_loader import synthfaces as sf
from data_loader.synthfaces.dataset import label_matrix, render_batch
from editing import PRESETS
from evaluation.synth_benchmark import SINGLE_EYE, TRANSFER_COMPONENTS, Benchmark, editing_targets_met, to_markdown

SIZE = 32
SETUP = {"seed": 0, "splits": {"num_train": 100, "num_val": 10, "num_test": 40}, "trained_on_synthfaces": True}
NUM = 40


class LookupClassifier:
    """A classifier that knows the true labels of every face the benchmark can render (the nearest
    known render decides): a perfect reader, so the references are judged on their edits alone."""
    path = "lookup"

    def __init__(self, factors):
        self.attribute_names = list(sf.ATTRIBUTES)
        self.images = render_batch(factors, SIZE).flatten(1)
        self.labels = torch.from_numpy(label_matrix(factors))

    def predict(self, images):
        d = torch.cdist(images.float().flatten(1), self.images)
        return self.labels[d.argmin(1)]

    def index(self, attribute):
        return self.attribute_names.index(attribute)


@pytest.fixture(scope="module")
def lookup():
    ids = range(110, 110 + NUM)
    faces = [sf.sample_factors(0, i) for i in ids]
    known = list(faces)
    n = len(faces)
    for comp in TRANSFER_COMPONENTS:
        known += [sf.transfer(faces[k], faces[(k + 1) % n], comp) for k in range(n)]
    for attr in {p.attribute for p in PRESETS.values() if p.attribute in sf.ATTRIBUTES} | {a for a, _, _ in SINGLE_EYE}:
        for target in (True, False):
            known += [sf.flip_attribute(f, attr, target) for f in faces]
    return LookupClassifier(known)


def _run(kind, clf, tmp_path):
    b = Benchmark(None, clf, tmp_path / kind, NUM, grid_rows=0, setup=SETUP, reference=kind, size=SIZE)
    b.results["setup"] = {"checkpoint": None, "reference": kind, "size": SIZE, "num": NUM, "data_seed": 0,
                          "first_id": b.ids[0], "last_id": b.ids[-1], "classifier": "lookup", "discriminator": None,
                          "strength_mode": "calibrated"}
    return b.run()


@pytest.mark.slow
def test_oracle_meets_every_target(lookup, tmp_path):
    r = _run("oracle", lookup, tmp_path)
    missed = [t["target"] for t in r["targets"] if not t["met"]]
    assert not missed, missed
    met, total = editing_targets_met(r["targets"])
    assert met == total and total == 5 * 2 + 7 + 1 + 2
    md = to_markdown(r)
    assert "not met" not in md
    # The oracle's rendering of the ground truth is its edit: the same reading.
    assert all(row["success_rendered_gt"] == row["success"] for row in [*r["attributes"].values(),
                                                                          *r["single_eye"].values()])
    # Every table row has as many cells as its header.
    cells = None
    for line in md.splitlines():
        if not line.startswith("|"):
            cells = None
            continue
        n = line.count("|")
        cells = n if cells is None else cells
        assert n == cells, line


@pytest.mark.slow
def test_no_edit_meets_no_editing_target(lookup, tmp_path):
    r = _run("no_edit", lookup, tmp_path)
    assert r["reconstruction"]["psnr"] >= 26  # a perfect reconstruction ...
    assert editing_targets_met(r["targets"])[0] == 0  # ... that edits nothing meets no editing target
    assert all(row["model"]["locality"] == float("inf") for row in r["transfer"].values())


@pytest.mark.slow
def test_untrained_model_meets_no_editing_target(lookup, tmp_path, tiny_model_config):
    from editing import Editor, SynthFacesLabels
    from model import build_networks

    torch.manual_seed(0)
    cfg = tiny_model_config("iafaces_cam", types={"encoder": "BoxEncoder"},
                            encoder={"content_input": "fill_components", "component_input": "features"})
    E, G, _ = build_networks(cfg, discriminator=False)
    ed = Editor(E.eval(), G.eval(), torch.device("cpu"), 16, str(tmp_path / "untrained.pth"),
                {"data_set": {"type": "SynthFaces", "args": {"size": SIZE, **SETUP["splits"]}}})
    labels = SynthFacesLabels(SIZE, 60, 0, splits=SETUP["splits"])
    b = Benchmark(ed, lookup, tmp_path / "untrained", NUM, labels, tmp_path / "boundaries", grid_rows=0, setup=SETUP)
    b.results["setup"] = {"checkpoint": "untrained", "arch": "iafaces_cam", "size": SIZE, "num": NUM, "data_seed": 0,
                          "first_id": b.ids[0], "last_id": b.ids[-1], "classifier": "lookup", "discriminator": None,
                          "strength_mode": "calibrated"}
    r = b.run()
    assert r["reconstruction"]["psnr"] < 26
    assert editing_targets_met(r["targets"])[0] == 0
    # Not only through the reconstruction gate: its transfers fail on their own too.
    transfer = [t for t in r["targets"] if t["target"].startswith("transfer") and "in-box" in t["target"]]
    assert transfer and not any(t["condition"] for t in transfer)
    assert all(np.isfinite(row["class_gap"]).all() for row in r["attributes"].values() if "class_gap" in row)


def test_copy_bound_scores_a_pixel_copy_against_the_counterfactual(capsys):
    """quick_probe --copy_bound: a skin-corrected copy of the reference's box pixels, scored like a
    transfer. Copying the rendered box is exact where the box holds only the component (its
    ratio is then 0) and is penalised where the counterfactual keeps the target's overlays."""
    from evaluation import quick_probe

    out = quick_probe.copy_bound(size=32, num=12)
    assert set(out) == {"l_eye", "r_eye", "eyes", "nose", "mouth"}
    assert all(math.isfinite(v) and v >= 0 for v in out.values())
    assert out["mouth"] < 1.0 < out["nose"]
    assert quick_probe.main(["--copy_bound", "32", "--num", "6"]) == 0
    assert "copy of the reference's box" in capsys.readouterr().out
    assert quick_probe.main([]) == 2
    assert "give a checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_edit_error_is_judged_against_the_rendered_ground_truth(lookup, tmp_path):
    """An edit maker that renders every face with a loss (here a blur) and edits exactly (its edit
    is its rendering of the flipped face) passes the error check: the check compares the edit
    with the maker's own rendering of the ground truth. Against the raw ground truth the blur
    alone would swamp the edit and fail it."""
    import torch.nn.functional as F

    def blur(x):
        return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)

    class BlurryOracle:
        def reconstruct(self, x):
            self.x = x
            return blur(x)

        def render(self, x):
            return blur(x)

        def transfer(self, ref, comp, ground_truth):
            return blur(ground_truth)

        def move(self, sel, directions, strength, comps, ground_truth):
            return blur(ground_truth)

    b = Benchmark(None, lookup, tmp_path / "blurry", NUM, grid_rows=0, setup=SETUP, reference="oracle", size=SIZE)
    b.edits = BlurryOracle()
    b.run_reconstruction()
    b.run_attributes()
    rows = [r for r in b.results["attributes"].values() if "error_rgt" in r]
    assert rows
    for r in rows:
        assert r["error_rgt"] == 0 and r["error_rgt_no_edit"] > 0
    assert any(r["error_gt"] > 0.7 * r["error_gt_no_edit"] for r in rows)


def test_strength_is_fitted_on_validation_faces():
    """Calibrated strengths without --strength_scale: the smallest multiple of the class gap at
    which the classifier reads the target on 90 % of the edited validation faces; the best one
    when none does. A stand-in model draws the mouth embedding into one pixel and a stand-in
    classifier reads "mouth open" above a threshold."""
    from evaluation.synth_benchmark import FIT_SCALES, FIT_SUCCESS

    class PixelEditor:
        size = SIZE

        def encode(self, x):
            return x, torch.zeros(x.shape[0], 4, 1)

        def decode(self, content, z):
            out = content.clone()
            out[:, 0, 0, 0] = z[:, 3, 0]
            return out

    class Threshold:
        attribute_names = list(sf.ATTRIBUTES)

        def __init__(self, t):
            self.t = t

        def index(self, a):
            return self.attribute_names.index(a)

        def predict(self, images):
            p = torch.zeros(images.shape[0], len(self.attribute_names), dtype=torch.bool)
            p[:, self.index("Mouth_Slightly_Open")] = images[:, 0, 0, 0] >= self.t
            return p

    b = Benchmark.__new__(Benchmark)
    b.ed, b.size, b.setup, b.attr_names, b._val = PixelEditor(), SIZE, SETUP, list(sf.ATTRIBUTES), None
    dirs = torch.ones(4, 1)
    b.clf = Threshold(1.4)
    scale, info = b.fit_scale("Mouth_Slightly_Open", True, dirs, 1.0, "mouth")
    assert scale == 1.5 and info["fit_success"] == {"1": 0.0, "1.25": 0.0, "1.5": 1.0}
    from data_loader.synthfaces.dataset import split_ranges

    val = split_ranges(**SETUP["splits"])["val"]  # never the test faces
    assert set(val).isdisjoint(split_ranges(**SETUP["splits"])["test"])
    closed = ~label_matrix([sf.sample_factors(0, i) for i in val])[:, b.attr_names.index("Mouth_Slightly_Open")]
    assert info["fit_faces"] == closed.sum() > 0
    b.clf, b._val = Threshold(5.0), None
    scale, info = b.fit_scale("Mouth_Slightly_Open", True, dirs, 1.0, "mouth")
    assert scale == FIT_SCALES[0] and len(info["fit_success"]) == len(FIT_SCALES)
    assert max(info["fit_success"].values()) < FIT_SUCCESS
