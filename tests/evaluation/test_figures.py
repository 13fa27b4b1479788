"""The release's two pictures: the edit heatmap and the accuracy/locality curves."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REFERENCE

CURVES = REFERENCE / "official_eval_lists" / "metrics" / "inter-curve-score"


def test_heatmap_hand_values_and_jet_colouring():
    import cv2

    from evaluation.heatmap import colorize, mean_abs_difference, minmax_uint8

    r1 = np.zeros((4, 4, 3), np.uint8)
    e1 = r1.copy()
    e1[1, 2] = (30, 60, 90)  # |diff| channel mean 60
    r2 = np.full((4, 4, 3), 100, np.uint8)
    e2 = r2.copy()
    e2[1, 2] = (100, 100, 40)  # channel mean 20
    e2[3, 0] = 130  # 30
    heat = mean_abs_difference([(r1, e1), (r2, e2)])
    expect = np.zeros((4, 4))
    expect[1, 2], expect[3, 0] = (60 + 20) / 2, 30 / 2
    np.testing.assert_allclose(heat, expect)
    scaled = minmax_uint8(heat)
    assert scaled[1, 2] == 255 and scaled[0, 0] == 0 and scaled[3, 0] == round(15 / 40 * 255)
    rgb = colorize(heat)
    jet = cv2.applyColorMap(np.array([[0, 96, 255]], np.uint8), cv2.COLORMAP_JET)[0, :, ::-1]
    assert (rgb[0, 0] == jet[0]).all() and (rgb[1, 2] == jet[2]).all()
    assert tuple(rgb[1, 2]) == (128, 0, 0) and tuple(rgb[0, 0]) == (0, 0, 128)  # JET: dark red / dark blue
    assert minmax_uint8(np.ones((2, 2))).max() == 0


def test_heatmap_cli_in_list_order(tmp_path, capsys):
    from evaluation.heatmap import main

    recon, edit = tmp_path / "recon", tmp_path / "edit"
    recon.mkdir()
    edit.mkdir()
    rng = np.random.default_rng(0)
    for stem in ("29960", "19945", "5"):
        a = rng.integers(0, 200, (16, 16, 3)).astype(np.uint8)
        b = a.copy()
        b[10:14, 4:12] += 50  # the "mouth" changes
        Image.fromarray(a).save(recon / f"{stem}.png")
        Image.fromarray(b).save(edit / f"{stem}.png")
    lst = tmp_path / "heatmap.txt"
    lst.write_text("29960.jpg\n19945.jpg\n")
    out = tmp_path / "h.png"
    assert main(["--recon", str(recon), "--edit", str(edit), "--list", str(lst), "--out", str(out),
                 "--npy", str(tmp_path / "h.npy"), "--figure", str(tmp_path / "fig.png")]) == 0
    heat = np.load(tmp_path / "h.npy")
    assert heat[10:14, 4:12].min() == pytest.approx(50) and heat[:10].max() == 0
    pic = np.asarray(Image.open(out))
    assert pic.shape == (16, 16, 3) and (tmp_path / "fig.png").stat().st_size > 1000
    assert "2 faces" in capsys.readouterr().out
    assert main(["--recon", str(recon), "--edit", str(tmp_path / "none")]) == 2


def test_published_curves_match_the_reference_numbers():
    """Last published step (reference README, section 9): beard 0.987 / 0.0113 / -0.036 (StyleGAN2
    0.792 / 0.0961 / -0.084); bushy 0.994 / 0.0102 / -0.015 (StyleGAN2 0.842 / 0.0906 / -0.021)."""
    from evaluation.curves import published_curves

    expect = {"beard": [(0.987, 0.0113, -0.036), (0.792, 0.0961, -0.084)],
              "bushy": [(0.994, 0.0102, -0.015), (0.842, 0.0906, -0.021)]}
    for attr, rows in expect.items():
        curves = published_curves(CURVES, attr)
        assert [c.label for c in curves] == ["IA-FaceS (published)", "StyleGAN2 (published)"]
        for c, (acc, mse, ifg) in zip(curves, rows):
            assert c.accuracy[-1] == pytest.approx(acc, abs=5e-4)
            assert c.mse_irr[-1] == pytest.approx(mse, abs=5e-5)
            assert c.ifg[-1] == pytest.approx(ifg, abs=5e-4)
    beard = published_curves(CURVES, "beard")[0]
    assert beard.steps == 10 and beard.accuracy[0] == pytest.approx(1 - 951 / 1000)  # adding a beard
    assert (np.diff(beard.accuracy) > 0).all()


def test_curves_cli_plots_a_run_beside_the_published(tmp_path, capsys):
    from evaluation.curves import main, run_curve, write_curve_data

    write_curve_data(tmp_path / "run" / "bushy", [100, 400, 900], [0.005, 0.006, 0.008], [0.0, -0.01, -0.02])
    own = run_curve(tmp_path / "run", "bushy", "mine")
    assert own.accuracy.tolist() == pytest.approx([0.1, 0.4, 0.9]) and own.steps == 3
    out = tmp_path / "c.png"
    assert main(["--published", str(CURVES), "--run", str(tmp_path / "run"), "--attr", "bushy",
                 "--run_label", "mine", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mine" in printed and "0.994" in printed
    im = Image.open(out)
    assert im.size[0] > 500 and im.size[1] > 200
    assert main(["--published", str(CURVES), "--run", str(tmp_path / "run"), "--attr", "beard",
                 "--out", str(out)]) == 2  # the run has no beard curve
    assert main(["--attr", "beard"]) == 2


def test_compute_curve_with_a_tiny_model(tiny_model_config):
    import torch

    from editing import PRESETS, Editor
    from editing.boundaries import Boundary
    from evaluation.curves import compute_curve
    from evaluation.metrics import mse_irr
    from model import build_networks

    torch.manual_seed(0)
    cfg = tiny_model_config()
    E, G, _ = build_networks(cfg, discriminator=False)
    ed = Editor(E, G, torch.device("cpu"))
    n = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    b = Boundary("No_Beard", n, torch.zeros(4), [1.0] * 4, [1.0] * 4, {}, {})

    class Clf:  # "No_Beard" when the image is bright
        attribute_names = ("Smiling", "No_Beard")

        def predict(self, x):
            m = x.mean((1, 2, 3))
            return torch.stack([m > 9, m > float(m.median())], 1)

    class D(torch.nn.Module):
        def forward(self, x):
            return x.mean((1, 2, 3))[:, None]

    x = torch.rand(5, 3, 32, 32) * 2 - 1
    preset = PRESETS["beard"]
    counts, irr, gaps = compute_curve(ed, x, b, preset, Clf(), D(), steps=3)
    assert len(counts) == len(irr) == len(gaps) == 3 and all(0 <= c <= 5 for c in counts)
    content, z = ed.encode(x)
    recon = ed.decode(content, z)
    last = ed.decode(content, Editor.apply_direction(z, b, -9.0, "mouth"))  # beard: against No_Beard, alpha 9
    assert irr[-1] == pytest.approx(mse_irr(recon, last, "mouth"))
    assert gaps[-1] == pytest.approx(float((last.mean((1, 2, 3)) - recon.mean((1, 2, 3))).mean()), abs=1e-6)
