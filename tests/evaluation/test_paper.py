"""The paper's evaluation in one command (evaluation/paper.py), end to end on a tiny checkpoint.

The inputs are made here: SynthFaces faces exported in the CelebA-HQ layout (``<int id>.jpg``,
64 px, and one zero-padded ``00042.jpg``), a lists folder in the release's layout, a tiny
random-weight *project* checkpoint whose training config is the release's CelebA-HQ config (a
released-format file holds a 256-px model of 47 M parameters), a random VGG16 backbone for LPIPS,
NVIDIA-format classifier pickles at 32 px (``test_celebahq_classifier``'s writer) and a narrow 32-px
rosinality discriminator posing as the release's (``test_release_ifg``'s layout). The values are
checked against independent computations from the written files: MSE in numpy, MSE_irr with the
release's 256-px boxes after cv2 reads, the classifier count with the numpy D_basic, IFG with the
torch.nn.functional rosinality forward, Arc-dis with the release's removal loop over a stub
verifier; the reconstruction row against ``evaluation.compare`` on the same folders."""
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import paper
from evaluation import release_ifg as R
from evaluation.discriminators import IFG_LABELS, StyleGAN2Discriminator
from tests.evaluation.test_celebahq_classifier import CONFIGS, d_basic_variables, np_d_basic, write_network_pickle
from tests.evaluation.test_release_ifg import (BOXES_256, TINY_CHANNELS, release_preprocess, rosinality_forward,
                                              rosinality_state)
from tests.helpers import REFERENCE, ROOT, one_error_line, release_removal, save_tiny_checkpoint

IDS = [str(10000 + k) for k in range(112)]
TEST = ["00042.jpg"] + [f"{i}.jpg" for i in IDS[:7]]
SHUFFLED = [f"{i}.jpg" for i in IDS[10:18]]
NOT_DETECTED = ["10003", "10004", "10050", "99999"]
UNDETECTED_BY_STUB = "10007"
ARCHED = IDS[60:66]
CLASSIFIER_KW = CONFIGS["defaults_32px_mbstd"]
#: The Dense1 bias of the tiny beard classifier: it falls in a gap between two of its logits near
#: the median over this test's beard edits, so some edits count and some do not.
CLASSIFIER_BIAS = -0.04129


def _lines(path: Path, entries) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{e}\n" for e in entries))


def _vgg16_features(path: Path) -> Path:
    """torchvision's VGG16 ``features.*`` keys and shapes with random values (LPIPS reads only these)."""
    g = torch.Generator().manual_seed(0)
    sd, c_in, idx = {}, 3, 0
    for c in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if c == "M":
            idx += 1
            continue
        sd[f"features.{idx}.weight"] = torch.randn(c, c_in, 3, 3, generator=g) * math.sqrt(2 / (9 * c_in))
        sd[f"features.{idx}.bias"] = torch.zeros(c)
        c_in, idx = c, idx + 2
    torch.save(sd, path)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from data_loader.synthfaces import render, sample_factors

    root = tmp_path_factory.mktemp("paper")
    data = root / "CelebA-HQ-img"
    data.mkdir()
    for k, name in enumerate(IDS + ["00042"]):
        Image.fromarray(render(sample_factors(0, 29000 + k), 64)).save(data / f"{name}.jpg", quality=95)
    lists = root / "lists"
    _lines(lists / "celebahq-lists" / "test.txt", TEST)
    _lines(lists / "celebahq-lists" / "shuffled_test.txt", SHUFFLED)
    _lines(lists / "attr_lists" / "no_beard.txt", IDS[:100])
    _lines(lists / "attr_lists" / "no_bushy.txt", IDS[2:])
    _lines(lists / "attr_lists" / "arched.txt", ARCHED)  # where the release's arc_dis.py table sends bushy
    _lines(lists / "attr_lists" / "mouth_close.txt", IDS[20:26])
    for k, (pos, neg) in enumerate((("beard", "no_beard"), ("bushy", "no_bushy"), ("mouth_open", "mouth_close"))):
        _lines(lists / "boundary_lists" / f"{pos}.txt", IDS[40 + 20 * k:50 + 20 * k])
        _lines(lists / "boundary_lists" / f"{neg}.txt", IDS[50 + 20 * k:60 + 20 * k])
    _lines(lists / "metrics" / "not_detecetd" / "iafaces.txt", NOT_DETECTED)
    for method in ("our_data", "stylegan2_data"):
        for attr in ("beard", "bushy"):
            folder = lists / "metrics" / "inter-curve-score" / method / attr
            _lines(folder / "acc.txt", [900, 500, 100])
            _lines(folder / "mse_score.txt", [0.008, 0.009, 0.011])
            _lines(folder / "d_score_drop.txt", [-0.001, -0.01, -0.03])
    release_config = json.loads((REFERENCE / "official_configs" / "iafaces-celebahq.json").read_text())
    ckpt = save_tiny_checkpoint(root / "ckpt" / "iafaces-tiny.pth", config=release_config)
    classifiers = root / "classifiers"
    classifiers.mkdir()
    variables = d_basic_variables(np.random.default_rng(7), **CLASSIFIER_KW)
    variables["4x4/Dense1/bias"] = np.array([CLASSIFIER_BIAS], np.float32)
    with pytest.MonkeyPatch.context() as mp:
        write_network_pickle(classifiers / "celebahq-classifier-27-beard.pkl", mp, variables, CLASSIFIER_KW)
        write_network_pickle(classifiers / "celebahq-classifier-24-mouth-slightly-open.pkl", mp,
                             d_basic_variables(np.random.default_rng(8), **CLASSIFIER_KW), CLASSIFIER_KW)
    return {"root": root, "data": data, "lists": lists, "ckpt": ckpt, "classifiers": classifiers,
            "beard_variables": variables, "vgg": _vgg16_features(root / "vgg16.pth")}


@pytest.fixture(autouse=True)
def no_default_weights(tmp_path, monkeypatch):
    """No weight file is found where the metrics look by default."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "deepface_home"))


def _run(work, out, *flags) -> int:
    return paper.main(["--resume", str(work["ckpt"]), "--data", str(work["data"]), "--lists", str(work["lists"]),
                       "--out", str(out), "--device", "cpu", "--batch_size", "32",
                       "--deepface_haar", str(ROOT / "tests" / "data" / "deepface_haarcascades"), *flags])


def _table(out: Path) -> dict:
    """paper.md's table: (part, metric) -> cell; every cell a number or says why not."""
    rows = {}
    for line in (out / "paper.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[0] != "part":
            rows[(cells[0].split(" (")[0], cells[1])] = cells[2]
    for key, cell in rows.items():
        if not (cell.startswith("skipped: needs ") or cell.startswith("not computed: ")):
            float(cell)  # a number
    return rows


def _img(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), np.float64) / 127.5 - 1


def _mse_irr(src: Path, edit: Path, components) -> float:
    """d_score.py's MSE_irr of two files: both read and resized to 256 px, the 256-px boxes zeroed."""
    a, b = release_preprocess(src), release_preprocess(edit)
    keep = torch.ones(256, 256, dtype=torch.float64)
    for c in components:
        x0, y0, x1, y1 = BOXES_256[c]
        keep[y0:y1, x0:x1] = 0
    return float(((a * keep - b * keep) ** 2).mean())


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


class _StubVerifier:
    """Arc-dis verifier: the mean absolute difference of the two files; one face is 'not detected'."""

    def verify_many(self, pairs, batch_size=32):
        return [None if Path(a).stem == UNDETECTED_BY_STUB else float(np.abs(_img(a) - _img(b)).mean())
                for a, b in pairs]



@pytest.mark.slow
def test_paper_end_to_end(work, tmp_path, monkeypatch, capsys):
    from evaluation.compare import main as compare_main

    monkeypatch.setattr(paper, "build_verifier", lambda *a, **k: _StubVerifier())
    out = tmp_path / "out"
    assert _run(work, out, "--presets", "beard,bushy", "--steps", "2", "--limit", "100", "--classifiers",
                str(work["classifiers"]), "--lpips_vgg", str(work["vgg"]), "--deepface_arcface",
                str(work["vgg"])) == 0
    err = capsys.readouterr().err
    res = json.loads((out / "paper.json").read_text())
    table = _table(out)
    assert res["complete"] and res["setup"]["limit"] == 100 and "not the paper's protocol" in err

    # Every metric row, with a number or the file it needs.
    recon = {m: table[("reconstruction", m)] for m in ("MSE", "PSNR", "SSIM", "LPIPS", "FID")}
    assert recon["FID"] == "skipped: needs pt_inception-2015-12-05-6726825d.pth"
    for c in paper.TRANSFER_COMPONENTS:
        assert table[(f"transfer: {c}", "IFG")] == "skipped: needs latest.pt (the release's StyleGAN2 discriminator)"
        assert table[(f"transfer: {c}", "FID")].startswith("skipped: needs pt_inception")
        float(table[(f"transfer: {c}", "MSE_irr")])
    for p in ("beard", "bushy"):
        for m in ("MSE_irr", "Arc-dis"):
            float(table[(f"attribute: {p}", m)])
        assert table[(f"attribute: {p}", "IFG")].startswith("skipped: needs latest.pt")
    float(table[("attribute: beard", "accuracy")])
    assert table[("attribute: bushy", "accuracy")] == "skipped: needs celebahq-classifier-16-bushy-eyebrows.pkl"
    # One line per missing file, naming it.
    for words in ("notice: IFG skipped: " + R.NEEDS + "; pass its path", "notice: FID skipped: FID needs pytorch-fid",
                  "notice: accuracy skipped: missing CelebA-HQ attribute classifier"):
        assert err.count(words) == 1, (words, err)

    # The release's output names.
    ids = ["42"] + IDS[:7]
    assert _names(out / "reconstruction" / "real") == _names(out / "reconstruction" / "fake") == \
        sorted(f"{i}.png" for i in ids)
    for c in paper.TRANSFER_COMPONENTS:  # the target's stem, as component_transfer.py
        assert _names(out / "transfer" / c) == sorted(["00042.png"] + [f"{i}.png" for i in IDS[:7]])
    assert _names(out / "attributes" / "beard") == sorted(f"{i}.png" for i in IDS[:100])
    assert _names(out / "attributes" / "bushy") == sorted(f"{i}.png" for i in IDS[2:102])  # --limit 100 of 110
    # The real images are the inputs as the release's loader gives them: decoded, INTER_LINEAR to 32 px.
    src = cv2.cvtColor(cv2.imread(str(work["data"] / "00042.jpg")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(np.asarray(Image.open(out / "reconstruction" / "real" / "42.png")),
                          cv2.resize(src, (32, 32), interpolation=cv2.INTER_LINEAR))

    # Reconstruction: compare's numbers on the same folders; MSE from the files.
    r = res["reconstruction"]["metrics"]
    j = tmp_path / "compare.json"
    assert compare_main(["--real", str(out / "reconstruction" / "real"), "--fake", str(out / "reconstruction" / "fake"),
                         "--metrics", "mse,psnr,ssim,lpips", "--lpips_vgg", str(work["vgg"]), "--list",
                         str(work["lists"] / "celebahq-lists" / "test.txt"), "--json", str(j)]) == 0
    assert {m: r[m] for m in ("mse", "psnr", "ssim", "lpips")} == json.loads(j.read_text())["metrics"]
    mse = np.mean([np.mean((_img(out / "reconstruction" / "real" / f"{i}.png")
                            - _img(out / "reconstruction" / "fake" / f"{i}.png")) ** 2) for i in ids])
    assert r["mse"] == pytest.approx(mse, rel=1e-6) and float(recon["MSE"]) == pytest.approx(mse, rel=1e-5)

    # Transfer MSE_irr: d_score.py's, target reconstruction vs transfer, 256-px boxes.
    for c, boxes in (("eyes", ("l_eye", "r_eye")), ("mouth", ("mouth",))):
        want = np.mean([_mse_irr(out / "reconstruction" / "fake" / f"{i}.png", out / "transfer" / c / f"{t}.png", boxes)
                        for i, t in zip(ids, ["00042"] + IDS[:7])])
        assert res["transfer"]["components"][c]["mse_irr"] == pytest.approx(want, rel=1e-6)

    # Attributes: the classifier count in numpy, MSE_irr from the files, Arc-dis over the release's list.
    beard = res["attributes"]["beard"]
    folder = out / "attributes" / "beard"
    x = np.stack([_img(folder / n).transpose(2, 0, 1) for n in os.listdir(folder)])
    logits = np_d_basic(x, work["beard_variables"], **CLASSIFIER_KW)[:, 0]
    count = int((logits < 0).sum())
    assert 0 < count < 100 and np.abs(logits).min() > 1e-5  # a count that could come out otherwise
    assert beard["accuracy_count"]["count"] == count and beard["accuracy_count"]["counted"] == 100
    assert beard["accuracy"] == pytest.approx(1 - count / 100)  # file 27 reads No_Beard
    want = np.mean([_mse_irr(out / "attributes" / "reconstruction" / f"{i}.png", folder / f"{i}.png", ("mouth",))
                    for i in IDS[:100]])
    assert beard["mse_irr"] == pytest.approx(want, rel=1e-6)
    kept = [i for i in release_removal(IDS[:100], NOT_DETECTED) if i != UNDETECTED_BY_STUB]
    assert "10004" in kept and "10003" not in kept  # the release's loop keeps an id after a removed one
    want = np.mean([np.abs(_img(out / "attributes" / "reconstruction" / f"{i}.png") - _img(folder / f"{i}.png")).mean()
                    for i in kept])
    assert beard["arc_dis"] == pytest.approx(want, rel=1e-12) and beard["arc_dis_counts"]["used"] == len(kept)

    # Arc-dis of bushy reads attr_lists/arched.txt (the release's table): those faces get the bushy edit.
    bushy = res["attributes"]["bushy"]
    assert bushy["arc_dis_counts"]["list"].endswith("arched.txt") and bushy["arc_dis_counts"]["used"] == len(ARCHED)
    arc = out / "attributes" / "arc_dis_faces" / "bushy"
    assert _names(arc) == sorted(f"{i}.png" for i in ARCHED)
    want = np.mean([np.abs(_img(out / "attributes" / "reconstruction" / f"{i}.png") - _img(arc / f"{i}.png")).mean()
                    for i in ARCHED])
    assert bushy["arc_dis"] == pytest.approx(want, rel=1e-12)

    # Curves: step 2 of 2 is the preset's own edit; the curve files in the release's layout.
    curve = res["curves"]["beard"]
    assert curve["strengths"] == [4.5, 9.0] and curve["counts"][-1] == count
    assert curve["mse_irr"][-1] == pytest.approx(beard["mse_irr"], rel=1e-12)
    assert (out / "curves" / "beard" / "acc.txt").read_text().splitlines() == [str(c) for c in curve["counts"]]
    assert res["curves"]["bushy"]["accuracy"].startswith("skipped: needs celebahq-classifier-16")
    for fig in ("curves.png", "examples_reconstruction.png", "examples_transfer.png", "examples_attributes.png"):
        assert (out / fig).is_file() and f"({fig})" in (out / "paper.md").read_text()


def test_arc_dis_lists_option_picks_the_release_table_or_the_edited_lists():
    from types import SimpleNamespace

    def ctx(choice):
        return SimpleNamespace(args=SimpleNamespace(arc_dis_lists=choice))

    assert [paper.arc_dis_list(ctx("release"), n) for n in ("bushy", "arched", "beard")] == ["arched", "bushy",
                                                                                              "no_beard"]
    assert [paper.arc_dis_list(ctx("edited"), n) for n in ("bushy", "arched", "beard")] == ["no_bushy", "no_arched",
                                                                                             "no_beard"]
    assert paper.build_parser().parse_args(["--resume", "a", "--data", "b", "--lists", "c", "--out", "d"]) \
        .arc_dis_lists == "release"


def test_paper_skips_each_missing_file_and_takes_the_papers_ifg(work, tmp_path, monkeypatch, capsys):
    """Without weight files every metric that needs one says which, once; with the release's
    discriminator (a narrow 32-px stand-in, as in test_release_ifg) IFG is d_score.py's."""
    monkeypatch.setattr(StyleGAN2Discriminator, "kind", property(lambda self: "release"))
    monkeypatch.setattr(R, "RELEASE_SIZE", 32)
    sd = rosinality_state(32, TINY_CHANNELS, seed=3)
    torch.save({"d": sd}, tmp_path / "latest.pt")
    out = tmp_path / "out"
    assert _run(work, out, "--presets", "mouth_open", "--curves", "none", "--limit", "6", "--discriminator",
                str(tmp_path / "latest.pt"), "--classifiers", str(work["classifiers"])) == 0
    err = capsys.readouterr().err
    table = _table(out)
    assert table[("reconstruction", "LPIPS")] == "skipped: needs vgg16-397923af.pth"
    assert table[("attribute: mouth_open", "Arc-dis")] == "skipped: needs arcface_weights.h5"
    assert table[("attribute: mouth_open", "accuracy")].startswith("not computed: ") and "at least 100" in err
    for words in ("LPIPS skipped: LPIPS needs the ImageNet VGG16 weights", "FID skipped:",
                  "Arc-dis skipped: DeepFace's ArcFace weights arcface_weights.h5 are needed"):
        assert err.count(words) == 1, (words, err)
    res = json.loads((out / "paper.json").read_text())
    targets = ["00042"] + IDS[:5]
    recon = ["42"] + IDS[:5]

    def ifg(edits, sources):
        return np.mean([float(rosinality_forward(sd, release_preprocess(e, 32))
                              - rosinality_forward(sd, release_preprocess(s, 32))) for e, s in zip(edits, sources)])

    fake = out / "reconstruction" / "fake"
    for c in paper.TRANSFER_COMPONENTS:
        got = res["transfer"]["components"][c]["ifg"]
        assert abs(got) > 1e-3  # far above the tolerance
        assert got == pytest.approx(ifg([out / "transfer" / c / f"{t}.png" for t in targets],
                                        [fake / f"{i}.png" for i in recon]), abs=1e-5)
        float(table[(f"transfer: {c}", "IFG")])
    got = res["attributes"]["mouth_open"]["ifg"]
    assert got == pytest.approx(ifg([out / "attributes" / "mouth_open" / f"{i}.png" for i in IDS[20:26]],
                                    [out / "attributes" / "reconstruction" / f"{i}.png" for i in IDS[20:26]]), abs=1e-5)
    assert res["transfer"]["components"]["eyes"]["ifg_label"] == IFG_LABELS["release"]
    # A run into an earlier run's folder replaces its report and figures.
    assert (out / "examples_attributes.png").is_file()
    assert _run(work, out, "--presets", "none", "--limit", "6") == 0
    assert not (out / "examples_attributes.png").exists() and "attribute:" not in (out / "paper.md").read_text()


def test_paper_bad_input_is_one_line(work, tmp_path, capsys):
    empty = tmp_path / "lists"
    empty.mkdir()
    assert paper.main(["--resume", str(work["ckpt"]), "--data", str(work["data"]), "--lists", str(empty), "--out",
                       str(tmp_path / "out"), "--device", "cpu", "--presets", "none"]) == 2
    one_error_line(capsys, "test.txt")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert _run(work, tmp_path / "busy", "--presets", "none") == 2
    one_error_line(capsys, "--out", "holds other files")
    assert _run(work, work["data"], "--presets", "none") == 2
    one_error_line(capsys, "--out", "holds the input")
    assert _run(work, tmp_path / "o", "--presets", "sunglasses") == 2
    one_error_line(capsys, "--presets", "sunglasses")
