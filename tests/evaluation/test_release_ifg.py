"""The release's IFG and MSE_irr (evaluation/release_ifg.py, issue 22): a rosinality ``latest.pt``
written here from rosinality's layout rules (not from our class), read weights only; its scores
against an independent re-implementation of the release's d_score.py steps (cv2 read and
INTER_LINEAR resize of the uint8 image, (x - 127.5) / 127.5, rosinality's forward in
torch.nn.functional); one-line refusals; IFG labels in compare's output; MSE_irr at 256 px."""
import argparse
import json
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluation import release_ifg as R
from evaluation.discriminators import IFG_LABELS, StyleGAN2Discriminator, ifg_label, load_discriminator
from evaluation.metrics import mse_irr
from tests.helpers import REFERENCE
from utils.errors import MetricError

#: rosinality's Discriminator(256, channel_multiplier=2): channels per resolution.
RELEASE_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128}
#: A narrow 32-px discriminator in the same layout, for fast tests.
TINY_CHANNELS = {4: 16, 8: 16, 16: 16, 32: 8}
#: The release's 256-px metric boxes [x0, y0, x1, y1] (d_score.py).
BOXES_256 = {"l_eye": (68, 90, 121, 137), "r_eye": (134, 90, 187, 137), "nose": (92, 132, 163, 175),
             "mouth": (87, 172, 168, 217)}


# ------------------------------------------------------------------ rosinality's layout and forward
def rosinality_shapes(size: int, channels: dict) -> dict:
    """rosinality's ``Discriminator`` state_dict keys and shapes: ``convs.0`` = ConvLayer(3, ch, 1)
    (``0.weight``, FusedLeakyReLU ``1.bias``); ``convs.j`` = ResBlock(in, out): conv1 in -> in,
    conv2 = Blur (``0.kernel``) + conv in -> out + bias, skip = Blur + 1x1 conv without bias;
    ``final_conv`` (in + 1 -> ch[4]); ``final_linear.0`` / ``.1``."""
    shapes = {"convs.0.0.weight": (channels[size], 3, 1, 1), "convs.0.1.bias": (channels[size],)}
    c_in = channels[size]
    for j, i in enumerate(range(int(math.log2(size)), 2, -1), start=1):
        c_out, p = channels[2 ** (i - 1)], f"convs.{j}"
        shapes.update({f"{p}.conv1.0.weight": (c_in, c_in, 3, 3), f"{p}.conv1.1.bias": (c_in,),
                       f"{p}.conv2.0.kernel": (4, 4), f"{p}.conv2.1.weight": (c_out, c_in, 3, 3),
                       f"{p}.conv2.2.bias": (c_out,), f"{p}.skip.0.kernel": (4, 4),
                       f"{p}.skip.1.weight": (c_out, c_in, 1, 1)})
        c_in = c_out
    c4 = channels[4]
    shapes.update({"final_conv.0.weight": (c4, c_in + 1, 3, 3), "final_conv.1.bias": (c4,),
                   "final_linear.0.weight": (c4, c4 * 16), "final_linear.0.bias": (c4,),
                   "final_linear.1.weight": (1, c4), "final_linear.1.bias": (1,)})
    return shapes


def rosinality_state(size: int, channels: dict, seed: int = 0) -> dict:
    """Random weights N(0, 1), biases N(0, 0.1^2), the blur kernels ``outer([1,3,3,1])^2 / 64``."""
    g = torch.Generator().manual_seed(seed)
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    sd = {}
    for key, shape in rosinality_shapes(size, channels).items():
        if key.endswith("kernel"):
            sd[key] = torch.outer(k, k) / 64
        else:
            sd[key] = torch.randn(*shape, generator=g) * (0.1 if key.endswith("bias") else 1.0)
    return sd


def _conv_layer(x, sd, prefix, k, down=False, act=True):
    """rosinality's ConvLayer: [Blur with the file's kernel], EqualConv2d, [FusedLeakyReLU]."""
    i = 0
    if down:
        p = 4 - 2 + k - 1
        kern = sd[f"{prefix}.0.kernel"].flip(0, 1)
        x = F.pad(x, ((p + 1) // 2, p // 2, (p + 1) // 2, p // 2))
        x = F.conv2d(x, kern.expand(x.shape[1], 1, 4, 4), groups=x.shape[1])
        i = 1
    wt = sd[f"{prefix}.{i}.weight"]
    x = F.conv2d(x, wt / math.sqrt(wt.shape[1] * k * k), stride=2 if down else 1, padding=0 if down else k // 2)
    if act:
        x = F.leaky_relu(x + sd[f"{prefix}.{i + 1}.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)
    return x


def rosinality_forward(sd: dict, x: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """rosinality's ``Discriminator.forward`` -> [B] (float64 unless ``dtype``)."""
    sd = {k: v.to(dtype) for k, v in sd.items()}
    out = _conv_layer(x.to(dtype), sd, "convs.0", 1)
    for j in range(1, int(math.log2(x.shape[-1])) - 1):
        p = f"convs.{j}"
        y = _conv_layer(_conv_layer(out, sd, f"{p}.conv1", 3), sd, f"{p}.conv2", 3, down=True)
        out = (y + _conv_layer(out, sd, f"{p}.skip", 1, down=True, act=False)) / math.sqrt(2)
    b, c, h, w = out.shape
    group = min(b, 4)
    s = out.view(group, -1, 1, c, h, w)
    s = torch.sqrt(s.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
    out = _conv_layer(torch.cat([out, s.repeat(group, 1, h, w)], 1), sd, "final_conv", 3).view(b, -1)
    w0, w1 = sd["final_linear.0.weight"], sd["final_linear.1.weight"]
    out = F.leaky_relu(F.linear(out, w0 / math.sqrt(w0.shape[1])) + sd["final_linear.0.bias"], 0.2) * math.sqrt(2)
    return F.linear(out, w1 / math.sqrt(w1.shape[1]), sd["final_linear.1.bias"])[:, 0].double()


def release_preprocess(path, size: int = 256) -> torch.Tensor:
    """d_score.py's process_img: cv2.imread, BGR -> RGB, albumentations Resize (INTER_LINEAR on
    uint8, none at the size), Normalize(0.5, 0.5, max_pixel_value=255) -> float64 [1, 3, S, S]."""
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    if rgb.shape[:2] != (size, size):
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy((rgb.astype(np.float64) - 127.5) / 127.5).permute(2, 0, 1)[None]


def release_mse_irr(src: torch.Tensor, edit: torch.Tensor, component: str) -> float:
    mask = torch.ones(256, 256, dtype=torch.float64)
    x0, y0, x1, y1 = BOXES_256[component]
    mask[y0:y1, x0:x1] = 0
    return float(((src * mask - edit * mask) ** 2).mean())


def _face_pair(folder, size: int, seed: int = 0, names=("a.png",)):
    """Smooth random faces (source) and an edit of each (mouth region and a faint global change)."""
    rng = np.random.default_rng(seed)
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "edit").mkdir(exist_ok=True)
    for name in names:
        low = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
        src = np.clip(cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
                      + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        edit = src.astype(np.int16) + rng.integers(-3, 4, src.shape)
        y0, y1, x0, x1 = (np.array([172, 217, 87, 168]) * size) // 256
        edit[y0:y1, x0:x1] += 60
        cv2.imwrite(str(folder / "src" / name), src[..., ::-1])
        cv2.imwrite(str(folder / "edit" / name), np.clip(edit, 0, 255).astype(np.uint8)[..., ::-1])
    return folder / "edit", folder / "src"


def _save_latest_pt(path, d_state: dict) -> None:
    """A training checkpoint as rosinality's train.py writes it (g, d, g_ema, optimizers, args)."""
    p = torch.nn.Parameter(torch.randn(4, 4))
    opt = torch.optim.Adam([p], lr=0.002, betas=(0.0, 0.99))
    p.sum().backward()
    opt.step()
    args = argparse.Namespace(size=256, channel_multiplier=2, batch=16, iter=800000, r1=10.0, path="lmdb/",
                              augment=False, ada_target=0.6, ckpt=None, wandb=False)
    torch.save({"g": {"style.1.weight": p.detach()}, "d": d_state, "g_ema": {"style.1.weight": p.detach()},
                "g_optim": opt.state_dict(), "d_optim": opt.state_dict(), "args": args, "ada_aug_p": 0.0}, path)


# ------------------------------------------------------------------------------------------ tests
def test_our_layout_is_rosinalitys_release_build():
    """StyleGAN2Discriminator at the release's settings has rosinality's keys and shapes (conv1 in
    -> in: IA-FaceS's own ResBlock widens in conv1 and could not load a real latest.pt)."""
    from model.config import DiscriminatorConfig
    from model.convert import official_keys

    with torch.device("meta"):
        net = StyleGAN2Discriminator(DiscriminatorConfig(256, channel_base=32768, channel_max=512))
    assert dict(official_keys(net)) == rosinality_shapes(256, RELEASE_CHANNELS)
    assert net.kind == "release" and net.channel_multiplier == 2


def test_stylegan2_forward_matches_rosinality(tmp_path):
    """A bare rosinality state_dict file (32 px, narrow) loads weights only; on images read as the
    release reads them, its scores equal rosinality's forward written independently, one image at
    a time and as a batch of 4 (minibatch-stddev groups); it is labelled not the paper's."""
    sd = rosinality_state(32, TINY_CHANNELS, seed=1)
    torch.save(sd, tmp_path / "d.pt")
    net = load_discriminator(tmp_path / "d.pt")
    assert isinstance(net, StyleGAN2Discriminator) and net.kind == "stylegan2"
    assert ifg_label(net) == IFG_LABELS["stylegan2"] and "not the paper's" in ifg_label(net)
    _, src_dir = _face_pair(tmp_path, 64, names=("a.png", "b.png", "c.png", "d.png"))
    files = sorted(src_dir.iterdir())
    ours = torch.cat([R.read_release_image(f, 32) for f in files])
    theirs = torch.cat([release_preprocess(f, 32) for f in files])
    assert ours.dtype == torch.float32 and ours.shape == (4, 3, 32, 32)
    torch.testing.assert_close(ours.double(), theirs, atol=1e-6, rtol=0)
    with torch.no_grad():
        single = torch.cat([net(x[None]) for x in ours])[:, 0].double()
        batch = net(ours)[:, 0].double()
    ref_single = torch.cat([rosinality_forward(sd, x[None]) for x in theirs])
    torch.testing.assert_close(single, ref_single, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch, rosinality_forward(sd, theirs), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(single, batch, atol=1e-3)  # the stddev feature depends on the batch


@pytest.mark.slow
def test_release_latest_pt_matches_the_release_steps(tmp_path):
    """The paper's IFG: a rosinality latest.pt (256 px, channel multiplier 2, with g, g_ema,
    optimizers and the argparse args) read weights only; 1024-px files scored one at a time equal
    the release's steps re-implemented here (about 8 s on an idle CPU: four 256-px forwards)."""
    sd = rosinality_state(256, RELEASE_CHANNELS, seed=2)
    _save_latest_pt(tmp_path / "latest.pt", sd)
    net = R.load_release_discriminator(tmp_path / "latest.pt")
    assert net.kind == "release"
    edit_dir, src_dir = _face_pair(tmp_path, 1024)
    edited, source = R.release_pairs(edit_dir, src_dir)
    assert [p.name for p in edited] == [p.name for p in source] == ["a.png"]
    got = R.score_ifg_release(net, edited, source)
    x_e, x_s = release_preprocess(edited[0]), release_preprocess(source[0])
    # float32 as the release runs (float64 would double the slowest part of this test)
    ref_e, ref_s = (float(rosinality_forward(sd, x, torch.float32)) for x in (x_e, x_s))
    assert got.edited.tolist() == pytest.approx([ref_e], abs=1e-5, rel=1e-5)
    assert got.source.tolist() == pytest.approx([ref_s], abs=1e-5, rel=1e-5)
    assert got.ifg == pytest.approx(ref_e - ref_s, abs=2e-5) and abs(ref_e - ref_s) > 1e-3
    assert got.mse_irr is None
    # MSE_irr from the same files (no discriminator needed); any other network is refused.
    irr = R.release_scores(edited, source, components="mouth")
    assert irr.ifg is None and irr.mse_irr == pytest.approx(release_mse_irr(x_s, x_e, "mouth"), rel=1e-6)
    with pytest.raises(MetricError, match="latest.pt of a 256-px StyleGAN2"):
        R.score_ifg_release(load_discriminator(_tiny_file(tmp_path)), edited, source)


class _RunsCode:
    """Pickles as a call of ``print``: loading the file must refuse it, not run it."""

    def __reduce__(self):
        return print, ("this must never run",)


def _tiny_file(tmp_path):
    path = tmp_path / "tiny_sg2.pt"
    torch.save({"d": rosinality_state(32, TINY_CHANNELS)}, path)
    return path


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace is deprecated, still supported
def test_release_discriminator_refusals(tmp_path, tiny_checkpoint, capsys):
    """Without the release's latest.pt the paper's IFG stops with one line naming that file; it
    never falls back to another network."""
    from model.checkpoint import load_models

    torch.save({"x": torch.zeros(1)}, tmp_path / "none.pt")
    torch.save({"d": _RunsCode()}, tmp_path / "hostile.pt")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3), torch.nn.Flatten())
    torch.jit.trace(net, torch.rand(1, 3, 8, 8)).save(str(tmp_path / "d.ts"))
    cases = [(None, "pass its path"), (tmp_path / "missing.pt", "does not exist"),
             (_tiny_file(tmp_path), "holds a 32-px StyleGAN2 discriminator"),
             (tiny_checkpoint, "IA-FaceS checkpoint"), (tmp_path / "none.pt", "no StyleGAN2 discriminator"),
             (tmp_path / "d.ts", "TorchScript"), (tmp_path / "hostile.pt", "builtins.print")]
    for path, words in cases:
        with pytest.raises(MetricError) as e:
            R.load_release_discriminator(path)
        assert "this must never run" not in capsys.readouterr().out
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(R.NEEDS) and words in msg, msg
        assert "latest.pt" in msg and "rosinality" in msg
    own = load_models(tiny_checkpoint, torch.device("cpu"), discriminator=True).discriminator
    faces = _face_pair(tmp_path / "faces", 32)
    for d, words in ((own, "the checkpoint's own discriminator"), (None, "none was given")):
        with pytest.raises(MetricError, match=words):
            R.score_ifg_release(d, *[list(p.iterdir()) for p in faces])
    (faces[0] / "z.png").write_bytes((faces[0] / "a.png").read_bytes())  # an edit without its source
    with pytest.raises(MetricError, match=r"1 of the 2 images .* \(first: z\.png\); the release pairs edits and sources by file name"):
        R.release_pairs(*faces)


def test_compare_labels_ifg_that_is_not_the_papers(tmp_path, tiny_checkpoint, capsys):
    """compare with the checkpoint's own discriminator: the printed table and the JSON say the IFG
    is not the paper's; MSE_irr says at which size it was taken."""
    from evaluation.compare import main

    edit_dir, src_dir = _face_pair(tmp_path, 32, names=("a.png", "b.png"))
    out = tmp_path / "r.json"
    assert main(["--real", str(src_dir), "--fake", str(edit_dir), "--metrics", "ifg", "--components", "mouth",
                 "--discriminator", str(tiny_checkpoint), "--json", str(out)]) == 0
    label = "IFG (the checkpoint's own discriminator, not the paper's)"
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ifg ")]
    assert len(printed) == 1 and printed[0].endswith(label)
    res = json.loads(out.read_text())
    assert res["labels"]["ifg"] == label and res["discriminator"]["kind"] == "checkpoint"
    assert math.isfinite(res["metrics"]["ifg"]) and res["conventions"]["mse_irr_size"] == 256
    assert res["labels"]["mse_irr"] == "MSE_irr at 32 px (the release compares 256-px images)"


def test_compare_mse_irr_of_large_images_is_the_releases(tmp_path, capsys):
    """compare's MSE_irr of 512-px files is d_score.py's (both files resized to 256 as uint8, the
    256-px boxes zeroed), batch-weighted over the pairs; --mse_irr_full_size compares at 512 px with
    the boxes the rounding rule gives there (mouth: ceil((b - 1) / 2) = 175, 345, 337, 435)."""
    from evaluation.compare import main

    names = ("a.png", "b.png", "c.png")
    edit_dir, src_dir = _face_pair(tmp_path, 512, names=names)
    out = tmp_path / "r.json"
    assert main(["--real", str(src_dir), "--fake", str(edit_dir), "--components", "mouth", "--metrics", "mse",
                 "--batch_size", "2", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    ref = np.mean([release_mse_irr(release_preprocess(src_dir / n), release_preprocess(edit_dir / n), "mouth")
                   for n in names])
    assert res["metrics"]["mse_irr"] == pytest.approx(ref, rel=1e-6)
    assert res["labels"]["mse_irr"] == "MSE_irr at 256 px, read from the files as the release"
    assert main(["--real", str(src_dir), "--fake", str(edit_dir), "--components", "mouth", "--metrics", "mse",
                 "--mse_irr_full_size", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    keep = np.ones((512, 512, 1))
    keep[345:435, 175:337] = 0
    full = np.mean([np.mean(((cv2.imread(str(src_dir / n)).astype(np.float64)
                              - cv2.imread(str(edit_dir / n)).astype(np.float64)) / 127.5 * keep) ** 2) for n in names])
    assert res["metrics"]["mse_irr"] == pytest.approx(full, rel=1e-6) and abs(full - ref) > 1e-5
    assert res["conventions"]["mse_irr_size"] is None and "full size" in res["labels"]["mse_irr"]
    assert "full size (not the release's 256 px)" in capsys.readouterr().out


def test_compare_with_the_release_discriminator_reads_the_files(tmp_path, capsys, monkeypatch):
    """With the release's discriminator compare scores the files as d_score.py does, not its loaded
    images, and labels the value the paper's. A narrow 32-px stand-in poses as the release's network
    (a 256-px one takes seconds per image)."""
    from evaluation.compare import main

    monkeypatch.setattr(StyleGAN2Discriminator, "kind", property(lambda self: "release"))
    monkeypatch.setattr(R, "RELEASE_SIZE", 32)
    sd = rosinality_state(32, TINY_CHANNELS, seed=3)
    torch.save({"d": sd}, tmp_path / "latest.pt")
    edit_dir, src_dir = _face_pair(tmp_path, 48, names=("a.png", "b.png", "c.png"))
    out = tmp_path / "r.json"
    assert main(["--real", str(src_dir), "--fake", str(edit_dir), "--metrics", "ifg", "--batch_size", "2",
                 "--discriminator", str(tmp_path / "latest.pt"), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["labels"]["ifg"] == IFG_LABELS["release"] and res["discriminator"]["kind"] == "release"
    names = ("a.png", "b.png", "c.png")
    ref = np.mean([float(rosinality_forward(sd, release_preprocess(edit_dir / n, 32))
                         - rosinality_forward(sd, release_preprocess(src_dir / n, 32))) for n in names])
    assert res["metrics"]["ifg"] == pytest.approx(ref, abs=1e-5)
    assert IFG_LABELS["release"] in capsys.readouterr().out


def test_mse_irr_at_256_for_large_images():
    """MSE_irr of 1024-px images: both resized to 256 with OpenCV INTER_LINEAR, the release's
    256-px boxes zeroed; size=None keeps the full size (canonical 1024-px boxes). Images of at
    most 256 px are taken as they are."""
    rng = np.random.default_rng(0)
    src = rng.uniform(-1, 1, (2, 1024, 1024, 3)).astype(np.float32)
    edit = np.clip(src + rng.normal(0, 0.1, src.shape), -1, 1).astype(np.float32)
    edit[:, 690:870, 350:674] = 0.9  # the mouth box, changed
    to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)  # noqa: E731
    small = [np.stack([cv2.resize(im, (256, 256), interpolation=cv2.INTER_LINEAR) for im in a]) for a in (src, edit)]
    expected = np.mean([release_mse_irr(to_t(s[None]).double(), to_t(e[None]).double(), "mouth")
                        for s, e in zip(*small)])
    assert mse_irr(to_t(src), to_t(edit), "mouth") == pytest.approx(expected, rel=1e-6)
    keep = np.ones((1024, 1024, 1))
    keep[690:870, 350:674] = 0
    full = float(np.mean(((src - edit) * keep) ** 2))
    assert mse_irr(to_t(src), to_t(edit), "mouth", size=None) == pytest.approx(full, rel=1e-6)
    assert abs(full - expected) > 1e-3
    s32, e32 = to_t(small[0][:, ::8, ::8].copy()), to_t(small[1][:, ::8, ::8].copy())
    assert mse_irr(s32, e32, "nose") == mse_irr(s32, e32, "nose", size=None)


def test_benchmark_report_labels_its_ifg():
    """The SynthFaces report says which discriminator scored IFG and heads its IFG columns as not the
    paper's; results without a discriminator keep the plain heading."""
    from evaluation.synth_benchmark.report import to_markdown

    row = dict.fromkeys(("in_box_error", "out_box_error", "mse_irr", "locality", "attr_agreement", "ifg"), 0.1)
    r = {"setup": {"checkpoint": "c.pth", "arch": "iafaces", "size": 32, "num": 2, "data_seed": 0, "first_id": 1,
                   "last_id": 2, "classifier": "clf.pt", "discriminator": "the checkpoint's discriminator",
                   "strength_mode": "official"},
         "ifg_discriminator": {"kind": "checkpoint", "label": IFG_LABELS["checkpoint"]},
         "reconstruction": {"mse": 0.1, "psnr": 20.0, "ssim": 0.5},
         "classifier": {"mean_accuracy_real": 0.9, "mean_accuracy_reconstruction": 0.8},
         "transfer": {"mouth": {m: dict(row) for m in ("model", "no_edit", "paste", "paste_real")}},
         "attributes": {}, "single_eye": {}, "targets": [], "seconds": 1.0}
    md = to_markdown(r)
    assert ("IFG from the checkpoint's discriminator: **IFG (the checkpoint's own discriminator, not the "
            "paper's)**") in md
    assert md.count("| IFG (not the paper's) |") == 3
    r["setup"]["discriminator"], r["ifg_discriminator"] = None, None
    md = to_markdown(r)
    assert "not the paper's" not in md and md.count("| IFG |") == 3


def test_curves_carry_the_ifg_label(tmp_path, capsys):
    """Published curves carry the paper's IFG label; a run's curve the label it was written with (or
    'not recorded'), in the printed summary."""
    from evaluation.curves import UNRECORDED_IFG, main, published_curves, run_curve, write_curve_data

    published = REFERENCE / "official_eval_lists" / "metrics" / "inter-curve-score"
    assert {c.ifg_label for c in published_curves(published, "bushy")} == {IFG_LABELS["release"]}
    write_curve_data(tmp_path / "run" / "bushy", [100, 900], [0.005, 0.008], [0.0, -0.02], IFG_LABELS["checkpoint"])
    assert run_curve(tmp_path / "run", "bushy", "mine").ifg_label == IFG_LABELS["checkpoint"]
    assert main(["--published", str(published), "--run", str(tmp_path / "run"), "--attr", "bushy",
                 "--out", str(tmp_path / "c.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"[{IFG_LABELS['release']}]") and lines[2].endswith(f"[{IFG_LABELS['checkpoint']}]")
    (tmp_path / "run" / "bushy" / "ifg_label.txt").unlink()  # data written before labels were recorded
    assert run_curve(tmp_path / "run", "bushy", "mine").ifg_label == UNRECORDED_IFG
