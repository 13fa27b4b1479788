"""Evaluation metrics (evaluation/metrics.py and the networks they use): values against
hand-computed ones, FID statistics, editing metrics with tiny networks, the attribute classifier."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from evaluation import metrics as M
from evaluation.metrics import METRICS, MetricError
from tests.helpers import SIZE


def const(value, n=1, size=SIZE):
    return torch.full((n, 3, size, size), float(value))


# ------------------------------------------------------------------------------------ pixel metrics
def test_registry_is_explicit():
    assert set(METRICS) == {"mse", "psnr", "ssim", "lpips", "fid", "mse_irr", "ifg", "arc_dis", "attr_acc"}
    assert METRICS["mse"] is M.mse and METRICS["mse_irr"] is M.mse_irr and METRICS["attr_acc"] is M.attribute_accuracy


def test_mse_and_psnr_hand_values():
    a = torch.cat([const(0.0), const(0.0)])
    b = torch.cat([const(0.1), const(0.3)])  # [-1, 1] differences 0.1 and 0.3
    assert M.mse(a, b, "none").tolist() == pytest.approx([0.01, 0.09])
    assert M.mse(a, b) == pytest.approx(0.05)
    # Without the min-max rescaling, on (x + 1) / 2 the differences are 0.05 and 0.15: MSE 0.0025 and 0.0225.
    assert M.psnr(a, b, "none", minmax=False).tolist() == pytest.approx(
        [10 * math.log10(400), 10 * math.log10(1 / 0.0225)])
    assert M.psnr(a, b, "mean", minmax=False) == pytest.approx((26.0206 + 16.4782) / 2, abs=1e-3)
    assert M.psnr(a, b, minmax=False) == pytest.approx(10 * math.log10(1 / 0.0125))  # MSE of the batch
    assert M.psnr(a, a) == pytest.approx(M.PSNR_MAX_DB)
    with pytest.raises(MetricError, match="equal shape"):
        M.mse(a, b[:, :, :16])


def test_psnr_min_max_rescaling_hand_values():
    """The release maps each image to [0, 1] and min-max rescales it (over all its channels) before PSNR."""
    a = torch.tensor([[[[-0.5, 0.5]]]])  # (x+1)/2 = [0.25, 0.75] -> min-max [0, 1]
    b = torch.tensor([[[[-1.0, 0.0]]]])  # (x+1)/2 = [0, 0.5]     -> min-max [0, 1]
    assert M.psnr(a, b) == pytest.approx(M.PSNR_MAX_DB)  # identical after the rescaling
    assert M.psnr(a, b, minmax=False) == pytest.approx(10 * math.log10(1 / 0.0625))  # 12.04 dB
    c = torch.tensor([[[[-1.0, 1.0, 1.0]]]])  # [0, 1, 1]
    d = torch.tensor([[[[-0.6, 0.0, 0.4]]]])  # (x+1)/2 = [0.2, 0.5, 0.7] -> [0, 0.6, 1]
    assert M.psnr(c, d) == pytest.approx(10 * math.log10(3 / 0.16))  # MSE 0.16 / 3: 12.73 dB
    # Over all channels of an image, not per channel: channel 2 spans [0.5, 1] of [0, 1] in total.
    e = torch.tensor([[[[-1.0, 1.0]], [[0.0, 1.0]]]])
    torch.testing.assert_close(M.minmax_unit(e), torch.tensor([[[[0.0, 1.0]], [[0.5, 1.0]]]], dtype=torch.float32))
    # A batch: one value from the batch MSE; constant images (max == min) become zeros.
    assert M.psnr(torch.cat([c, c]), torch.cat([d, c])) == pytest.approx(10 * math.log10(6 / 0.16))
    assert torch.equal(M.minmax_unit(torch.full((1, 3, 2, 2), 0.3)), torch.zeros(1, 3, 2, 2))


# pytorch_ssim's window: g_k = exp(-(k - 5)^2 / 4.5) / S, S = sum_k exp(-(k - 5)^2 / 4.5) = 3.7592328,
# g_5 = 0.2660117; the centre tap of the 2-D window is g_5^2 = 0.0707622.
SSIM_G5 = 0.26601172486179436


def test_ssim_golden_single_pixel():
    """1x1 images a = 1, b = 0.5, no min-max: with zero padding only the centre tap w = g_5^2 sees a
    pixel, so mu_a = w, mu_b = w/2, var_a = w - w^2, var_b = (w - w^2)/4, cov = (w - w^2)/2 and
    SSIM = (2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)) = 0.6442559."""
    w = SSIM_G5 ** 2
    assert float(M.gaussian_window()[5, 5]) == pytest.approx(w, rel=1e-12)
    a, b = torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 0.5)
    assert float(M.ssim_map(a, b)) == pytest.approx(0.6442559, abs=1e-7)
    # Through ssim() the [-1, 1] inputs 1 and 0 map to 1 and 0.5.
    assert M.ssim(torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), minmax=False) == pytest.approx(0.6442559, abs=1e-7)


def _ssim_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch_ssim written out with loops: per channel and pixel, Gaussian-weighted sums over the
    11x11 neighbourhood with zero padding (pixels outside the image contribute 0), borders kept."""
    e = [math.exp(-(k - 5) ** 2 / 4.5) for k in range(11)]
    g = [v / sum(e) for v in e]
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    C, H, W = a.shape
    vals = []
    for c in range(C):
        for y in range(H):
            for x in range(W):
                m1 = m2 = s11 = s22 = s12 = 0.0
                for dy in range(-5, 6):
                    for dx in range(-5, 6):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < H and 0 <= xx < W:
                            wt = g[dy + 5] * g[dx + 5]
                            p, q = a[c, yy, xx], b[c, yy, xx]
                            m1 += wt * p
                            m2 += wt * q
                            s11 += wt * p * p
                            s22 += wt * q * q
                            s12 += wt * p * q
                s11, s22, s12 = s11 - m1 * m1, s22 - m2 * m2, s12 - m1 * m2
                vals.append(((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1 * m1 + m2 * m2 + c1) * (s11 + s22 + c2)))
    return sum(vals) / len(vals)


def test_ssim_matches_hand_computation_with_zero_padding_and_borders():
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (2, 3, 4))
    b = np.clip(a + rng.normal(0, 0.4, a.shape), -1, 1)
    ta, tb = torch.from_numpy(a)[None], torch.from_numpy(b)[None]
    ua, ub = M.minmax_unit(ta)[0].numpy(), M.minmax_unit(tb)[0].numpy()
    assert M.ssim(ta, tb) == pytest.approx(_ssim_by_hand(ua, ub), rel=1e-10)
    assert M.ssim(ta, tb, minmax=False) == pytest.approx(_ssim_by_hand((a + 1) / 2, (b + 1) / 2), rel=1e-10)
    # Batches: the mean of the per-image values.
    two = M.ssim(torch.cat([ta, tb]), torch.cat([tb, tb]), reduction="none")
    assert two[0] == pytest.approx(M.ssim(ta, tb)) and two[1] == pytest.approx(1.0)
    # The borders count: scikit-image (borders cropped, reflect padding) gives another value on 32-px images.
    x = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert abs(M.ssim(x, y) - M.ssim(x, y, variant="skimage")) > 1e-3
    with pytest.raises(MetricError, match="variant"):
        M.ssim(x, y, variant="gaussian")


def test_ssim_closed_form_for_constant_images():
    # Constant images: sigma terms vanish and SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1), C1 = 0.01^2
    # (scikit-image variant, no min-max: the map has no border effects there).
    m1, m2 = 0.2, 0.6
    a, b = const(2 * m1 - 1), const(2 * m2 - 1)
    c1 = 0.01 ** 2
    assert M.ssim(a, b, variant="skimage", minmax=False) == pytest.approx(
        (2 * m1 * m2 + c1) / (m1 ** 2 + m2 ** 2 + c1), rel=1e-6)
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    assert M.ssim(x, x, "none").tolist() == pytest.approx([1.0, 1.0])
    assert M.ssim(x, -x) < 0.5


def test_lpips_random_backbone_and_missing_weights(tmp_path):
    model = M.lpips_model("random")
    torch.manual_seed(0)
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    y = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    assert M.lpips_distance(x, x, model=model) == pytest.approx(0.0, abs=1e-6)
    d = M.lpips_distance(x, y, model=model, reduction="none")
    assert d.shape == (2,) and (d > 0).all()
    with pytest.raises(MetricError, match="vgg16-397923af.pth"):
        M.lpips_model("pretrained", str(tmp_path / "missing.pth"))


# --------------------------------------------------------------------------------------------- FID
def test_matrix_sqrt_of_known_matrices():
    np.testing.assert_allclose(M.matrix_sqrt(np.diag([4.0, 9.0])), np.diag([2.0, 3.0]), atol=1e-12)
    # [[1, 1], [0, 1]]^2 = [[1, 2], [0, 1]] (non-symmetric, like the product S1 S2).
    np.testing.assert_allclose(M.matrix_sqrt(np.array([[1.0, 2.0], [0.0, 1.0]])), [[1.0, 1.0], [0.0, 1.0]],
                               atol=1e-10)
    rot = np.array([[0.6, -0.8], [0.8, 0.6]])
    spd = rot @ np.diag([16.0, 0.25]) @ rot.T
    np.testing.assert_allclose(M.matrix_sqrt(spd), rot @ np.diag([4.0, 0.5]) @ rot.T, atol=1e-10)


def test_frechet_distance_closed_forms():
    mu, sigma = np.array([0.5, -1.0, 2.0]), np.diag([1.0, 2.0, 3.0])
    assert M.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)
    # N(0, I) vs N(1, 4I) in 3-d: |1|^2 * 3 + 3 * (1 + 4 - 2 * 2) = 6.
    assert M.frechet_distance(np.zeros(3), np.eye(3), np.ones(3), 4 * np.eye(3)) == pytest.approx(6.0)
    # Commuting, non-diagonal covariances: S1 = R diag(1, 4) R^T, S2 = R diag(9, 1) R^T ->
    # Tr(S1 + S2 - 2 sqrt(S1 S2)) = 5 + 10 - 2 * (3 + 2) = 5; |(3, 4)|^2 = 25.
    rot = np.array([[0.6, -0.8], [0.8, 0.6]])
    s1, s2 = rot @ np.diag([1.0, 4.0]) @ rot.T, rot @ np.diag([9.0, 1.0]) @ rot.T
    assert M.frechet_distance([0, 0], s1, [3, 4], s2) == pytest.approx(30.0)
    assert M._frechet_own(np.zeros(2), s1, np.array([3.0, 4.0]), s2) == pytest.approx(30.0)
    with pytest.raises(MetricError, match="do not match"):
        M.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_fid_pipeline_with_random_feature_extractor():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, 2, 1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    seen = []

    def features(x):  # pytorch-fid's convention: images in [0, 1]
        seen.append((float(x.min()), float(x.max())))
        with torch.no_grad():
            return net(x)

    real = torch.rand(24, 3, SIZE, SIZE) * 2 - 1
    fake = (real + 0.3 * torch.randn_like(real)).clamp(-1, 1)
    assert M.fid(real, real, features=features, batch_size=7) == pytest.approx(0.0, abs=1e-6)
    assert all(lo >= 0 and hi <= 1 for lo, hi in seen)
    with torch.no_grad():
        fr, ff = net((real + 1) / 2).double().numpy(), net((fake + 1) / 2).double().numpy()
    expected = M.frechet_distance(fr.mean(0), np.cov(fr, rowvar=False), ff.mean(0), np.cov(ff, rowvar=False))
    assert expected > 0
    assert M.fid(real, fake, features=features, batch_size=5) == pytest.approx(expected, rel=1e-6)


def test_inception_weights_never_downloaded(tmp_path, monkeypatch):
    import pytorch_fid.inception as pi
    from evaluation.fid import INCEPTION_FILE, find_inception_weights, load_inception

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MetricError, match=INCEPTION_FILE) as e:
        find_inception_weights()
    assert str(tmp_path / "hub" / "checkpoints") in str(e.value)
    with pytest.raises(MetricError, match="--inception"):
        find_inception_weights(tmp_path / "nope.pth")

    def no_download(*a, **k):
        raise AssertionError("download attempted")

    monkeypatch.setattr(pi, "load_state_dict_from_url", no_download)
    # A random state dict with the FID Inception's structure, as a local weights file.
    inc = pi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    inc.Mixed_5b, inc.Mixed_5c, inc.Mixed_5d = (pi.FIDInceptionA(192, 32), pi.FIDInceptionA(256, 64),
                                                pi.FIDInceptionA(288, 64))
    inc.Mixed_6b, inc.Mixed_6c = pi.FIDInceptionC(768, 128), pi.FIDInceptionC(768, 160)
    inc.Mixed_6d, inc.Mixed_6e = pi.FIDInceptionC(768, 160), pi.FIDInceptionC(768, 192)
    inc.Mixed_7b, inc.Mixed_7c = pi.FIDInceptionE_1(1280), pi.FIDInceptionE_2(2048)
    weights = tmp_path / INCEPTION_FILE
    torch.save(inc.state_dict(), weights)
    model = load_inception(weights, dims=64)
    assert pi.load_state_dict_from_url is no_download  # restored after loading
    torch.testing.assert_close(model.blocks[0][0].conv.weight, inc.Conv2d_1a_3x3.conv.weight)
    from evaluation.fid import InceptionFeatures
    f = InceptionFeatures(model)(torch.rand(2, 3, SIZE, SIZE))
    assert f.shape == (2, 64)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace is deprecated, still supported
def test_load_torchscript_only_accepts_torchscript(tmp_path):
    from evaluation.discriminators import load_discriminator

    net = nn.Sequential(nn.Conv2d(3, 1, 3), nn.Flatten(), nn.LazyLinear(1))
    x = torch.rand(2, 3, SIZE, SIZE)
    net(x)
    torch.jit.trace(net, x).save(str(tmp_path / "d.ts"))
    with pytest.raises(MetricError, match="TorchScript file.*runs code.*--trust_code"):
        M.load_torchscript(tmp_path / "d.ts")  # running a file's code needs the user's explicit trust
    loaded = M.load_torchscript(tmp_path / "d.ts", trust_code=True)
    assert loaded is not None and not loaded.training
    torch.testing.assert_close(loaded(x), net(x))
    torch.testing.assert_close(load_discriminator(tmp_path / "d.ts", trust_code=True)(x), net(x))  # IFG's route
    torch.save({"w": torch.zeros(1)}, tmp_path / "plain.pt")
    assert M.load_torchscript(tmp_path / "plain.pt") is None


# ----------------------------------------------------------------------------------- editing metrics
def test_metric_boxes_are_the_official_256_regions():
    assert M.metric_boxes(256) == ((68, 90, 121, 137), (134, 90, 187, 137), (92, 132, 163, 175),
                                   (87, 172, 168, 217))


def test_mse_irr_zero_inside_box_exact_outside():
    torch.manual_seed(1)
    src = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    x0, y0, x1, y1 = M.metric_boxes(SIZE)[3]  # mouth
    inside = src.clone()
    inside[..., y0:y1, x0:x1] += 0.7
    assert M.mse_irr(src, inside, "mouth") == 0.0
    assert M.mse_irr(src, inside, ["mouth", "nose"]) == 0.0
    assert M.mse_irr(src, inside, "eyes") > 0  # the mouth box is not zeroed for an eye edit
    outside = src.clone()
    outside[..., 0:4, 0:4] += 0.5  # top-left corner, outside every box
    # 4 x 4 pixels x 3 channels of 0.5^2 over all 3 x 32 x 32 values.
    assert M.mse_irr(src, outside, "mouth") == pytest.approx(4 * 4 * 3 * 0.25 / (3 * SIZE * SIZE))
    assert M.mse_irr(src, outside, "all", "none").tolist() == pytest.approx([1 / 256, 1 / 256])
    with pytest.raises(MetricError, match="unknown component"):
        M.mse_irr(src, outside, "ears")


def test_ifg_with_tiny_discriminators(tmp_path):
    class MeanD(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(2.0))

        def forward(self, x):
            return self.scale * x.mean((1, 2, 3))[:, None]

    assert M.ifg(MeanD(), const(0.5, 3), const(0.0, 3)) == pytest.approx(1.0)
    assert M.ifg(MeanD(), const(-0.25, 2), const(0.25, 2)) == pytest.approx(-1.0)

    from evaluation.discriminators import StyleGAN2Discriminator, load_discriminator
    from model.config import DiscriminatorConfig
    from model.convert import own_to_official
    from model.networks import Discriminator

    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(SIZE, channel_base=256, channel_max=32)).eval()
    e, s = torch.rand(4, 3, SIZE, SIZE) * 2 - 1, torch.rand(4, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        expected = float(d(e).mean() - d(s).mean())
    assert M.ifg(d, e, s, batch_size=3) == pytest.approx(expected, abs=1e-6)
    # Larger inputs are resized to the discriminator's size.
    big = torch.nn.functional.interpolate(e, size=64, mode="nearest")
    assert M.discriminator_scores(d, big).shape == (4,) and M.ifg(d, big, big) == 0.0

    # A StyleGAN2 (rosinality layout) discriminator file round-trips.
    sg = StyleGAN2Discriminator(DiscriminatorConfig(SIZE, channel_base=256, channel_max=32)).eval()
    torch.save({"d": dict(own_to_official(sg))}, tmp_path / "sg2.pt")
    loaded = load_discriminator(tmp_path / "sg2.pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(e), sg(e))
    with pytest.raises(MetricError, match="holds no discriminator"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "none.pt")
        load_discriminator(tmp_path / "none.pt")


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace is deprecated, still supported
def test_arc_dis_with_tiny_backbone(tmp_path):
    from evaluation.arcface import ArcFaceEmbedder, IResNet, load_arcface

    torch.manual_seed(0)
    net = IResNet((1, 1, 1, 1), num_features=16, width=4, input_size=32).eval()
    emb = ArcFaceEmbedder(net)
    x = torch.rand(3, 3, SIZE, SIZE) * 2 - 1
    y = torch.rand(3, 3, SIZE, SIZE) * 2 - 1
    assert M.arc_dis(emb, x, x) == pytest.approx(0.0, abs=1e-6)
    ex, ey = emb(x).double(), emb(y).double()
    per = 1 - (ex * ey).sum(1)  # embeddings are unit vectors
    assert M.arc_dis(emb, x, y) == pytest.approx(float(per.mean()), rel=1e-5)
    detector = lambda imgs: torch.tensor([True, False, True])  # noqa: E731 - finds faces 0 and 2
    assert M.arc_dis(emb, x, y, detector=detector) == pytest.approx(float(per[[0, 2]].mean()), rel=1e-5)
    assert math.isnan(M.arc_dis(emb, x, y, detector=lambda imgs: torch.zeros(3, dtype=torch.bool)))
    # state_dict and TorchScript files.
    torch.save(net.state_dict(), tmp_path / "backbone.pth")
    torch.testing.assert_close(load_arcface(tmp_path / "backbone.pth")(x), emb(x))
    torch.jit.trace(net, torch.rand(2, 3, 32, 32)).save(str(tmp_path / "arc.ts"))
    torch.testing.assert_close(ArcFaceEmbedder(torch.jit.load(str(tmp_path / "arc.ts")), 32)(x), emb(x))
    with pytest.raises(MetricError, match="Arc-dis needs an ArcFace model: pass --arcface"):
        load_arcface(None)
    with pytest.raises(MetricError, match="not found"):
        load_arcface(tmp_path / "missing.pth")


def test_attribute_accuracy_and_classifier_file(tmp_path):
    from evaluation.attr_classifier import AttributeClassifier, load_classifier, main, save_classifier

    class Fixed:
        attribute_names = ("Smiling", "Male")

        def predict(self, images):
            return torch.tensor([[True, False], [True, True], [False, False], [True, False]])

    x = torch.zeros(4, 3, SIZE, SIZE)
    assert M.attribute_accuracy(Fixed(), x, "Smiling") == 0.75
    assert M.attribute_accuracy(Fixed(), x, "male", target=False) == 0.75
    with pytest.raises(MetricError, match="no attribute 'Young'"):
        M.attribute_accuracy(Fixed(), x, "Young")

    clf = AttributeClassifier(SIZE, width=4, max_width=8, hidden=8)
    save_classifier(clf, tmp_path / "c.pt")
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert raw["format"] == "iafaces-attr-classifier/1" and raw["arch"]["size"] == SIZE
    again = load_classifier(tmp_path / "c.pt")
    x = torch.rand(3, 3, 64, 64) * 2 - 1  # resized to the classifier's size
    torch.testing.assert_close(again.predict_proba(x), clf.eval().predict_proba(x))
    assert again.predict(x).dtype == torch.bool and again.predict(x).shape == (3, 15)
    # The training command (tiny settings).
    assert main(["--size", "32", "--num", "16", "--num_val", "8", "--epochs", "1", "--batch_size", "8",
                 "--width", "4", "--out", str(tmp_path / "t.pt")]) == 0
    info = torch.load(tmp_path / "t.pt", weights_only=True)
    assert set(info["val_accuracy"]) == set(again.attribute_names) and info["data"]["train_ids"] == [0, 16]
    # The file records every setting it was made with and its mean validation accuracy (issue 24).
    from evaluation.attr_classifier import training_settings
    assert info["settings"] == training_settings(32, num=16, num_val=8, epochs=1, batch_size=8, width=4)
    assert info["mean_val_accuracy"] == pytest.approx(sum(info["val_accuracy"].values()) / 15)


