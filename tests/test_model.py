"""Core networks: parity with the official implementation, ops, configs, checkpoints."""
import dataclasses
import json
import re
import sys
import types

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from conftest import fill_official
from model import build_model_config, build_networks
from model.boxes import COMPONENTS, boxes_at
from model.config import ConfigError, ModelConfig
from model.convert import ConversionError, load_official_state_dict, official_keys, official_to_own, own_to_official
from model.ops import fir_kernel, modulated_conv2d, upfirdn2d

CONFIGS_256 = ["iafaces-celebahq-256", "iafaces_cam-celebahq-256"]
CONFIGS_1024 = ["iafaces-ffhq-1024", "iafaces_cam-ffhq-1024"]


def _official_cfg(layout):
    return build_model_config(layout["model_arch"], layout["encoder_args"], layout["generator_args"],
                              layout["discriminator_args"])


# ------------------------------------------------------------------------------------------ boxes
def test_boxes_match_reference_table(reference_dir):
    text = (reference_dir / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", text, re.M)
    assert len(rows) == 6
    for fs, *boxes in rows:
        expected = tuple(tuple(int(v) for v in b.split(",")) for b in boxes)
        assert boxes_at(int(fs)) == expected, fs


# ----------------------------------------------------------------------------------------- parity
@pytest.fixture(scope="module")
def parity_arrays(reference_dir):
    return np.load(reference_dir / "official_parity_256.npz")


@pytest.mark.parametrize("name", CONFIGS_256)
def test_parity_with_official_256(name, official_layout, parity_arrays):
    layout = official_layout[name]
    E, G, D = build_networks(_official_cfg(layout))
    E, G, D = E.double(), G.double(), D.double()
    for net, part in ((E, "e_ema"), (G, "g_ema"), (D, "d")):
        load_official_state_dict(net, fill_official(layout[part]), part)
    x = torch.from_numpy(np.random.default_rng(7).uniform(-1, 1, (1, 3, 256, 256)))
    x2 = torch.from_numpy(np.random.default_rng(8).uniform(-1, 1, (1, 3, 256, 256)))
    with torch.no_grad():
        content, comps = E(x, torch.ones(1, 1, 256, 256, dtype=torch.float64))
        _, comps2 = E(x2)
        image = G(content, comps)
        ours = {"content": content, "components": comps, "components_second": comps2, "image": image,
                "d_input": D(x), "d_output": D(image)}
    for key, value in ours.items():
        ref = parity_arrays[f"{name}/{key}"]
        assert value.shape == ref.shape, key
        rel = np.abs(value.numpy() - ref).max() / np.abs(ref).max()
        assert rel < 1e-6, f"{name}/{key}: relative error {rel:.3g}"


@pytest.mark.parametrize("name", CONFIGS_256 + CONFIGS_1024)
def test_official_layout_keys_and_shapes(name, official_layout):
    layout = official_layout[name]
    E, G, D = build_networks(_official_cfg(layout))
    for net, part in ((E, "e_ema"), (G, "g_ema"), (D, "d")):
        theirs = [(e["key"], tuple(e["shape"])) for e in layout[part]]
        assert official_keys(net) == theirs, part


@pytest.mark.parametrize("name", CONFIGS_1024)
def test_1024_converts_both_ways(name, official_layout):
    layout = official_layout[name]
    E, G, D = build_networks(_official_cfg(layout))
    for net, part in ((E, "e_ema"), (G, "g_ema"), (D, "d")):
        official = fill_official(layout[part], dtype=torch.float32)
        load_official_state_dict(net, official, part)
        back = own_to_official(net)
        assert list(back) == [e["key"] for e in layout[part]]
        for key, value in official.items():
            assert torch.equal(back[key], value), key


def test_conversion_rejects_wrong_architecture(official_layout):
    E, _, _ = build_networks(_official_cfg(official_layout["iafaces-ffhq-1024"]), discriminator=False)
    with pytest.raises(ConversionError, match="missing"):
        official_to_own(E, fill_official(official_layout["iafaces-celebahq-256"]["e_ema"]))


def test_cam_placement_official_differs_only_after_first_upsampling():
    official = build_networks(build_model_config("iafaces_cam_256"), discriminator=False)[1]
    aligned = build_networks(build_model_config("iafaces_cam_256", generator={"cam_placement": "aligned"}),
                             discriminator=False)[1]
    geo_off, geo_al = official.cam_geometry(), aligned.cam_geometry()
    assert geo_off[:2] == geo_al[:2] == [(8, 8), (8, 8)]
    for (res_o, fs_o), (res_a, fs_a) in zip(geo_off[2:], geo_al[2:]):
        assert res_o == res_a and fs_a == res_a and fs_o == res_o // 2
    # Aligned owner maps cover the boxes at the layer's own resolution.
    owner = aligned.cam_owner_10
    for i, (x0, y0, x1, y1) in enumerate(boxes_at(256)):
        assert (owner[y0:y1, x0:x1] == i).float().mean() > 0.5
    # Same weights, different placement -> different images.
    aligned.load_state_dict(official.state_dict())
    content, comps = torch.randn(1, 512, 8, 8), torch.randn(1, 4, 256)
    with torch.no_grad():
        assert not torch.allclose(official(content, comps), aligned(content, comps))


# -------------------------------------------------------------------------------------------- ops
def _naive_upfirdn2d(x, k, up, down, pad):
    x = x.numpy()
    B, C, H, W = x.shape
    u = np.zeros((B, C, H * up, W * up))
    u[:, :, ::up, ::up] = x
    p0, p1 = pad
    u = np.pad(u, ((0, 0), (0, 0), (max(p0, 0), max(p1, 0)), (max(p0, 0), max(p1, 0))))
    if p0 < 0 or p1 < 0:
        u = u[:, :, -min(p0, 0): u.shape[2] + min(p1, 0), -min(p0, 0): u.shape[3] + min(p1, 0)]
    out = np.stack([np.stack([scipy.signal.convolve2d(u[b, c], k.numpy(), mode="valid") for c in range(C)])
                    for b in range(B)])
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 2)), (2, 1, (2, 1)), (1, 2, (2, 2)), (2, 2, (-1, 1))])
def test_upfirdn2d_matches_definition(up, down, pad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 7, generator=g, dtype=torch.float64)
    k = torch.randn(4, 4, generator=g, dtype=torch.float64)  # asymmetric: checks the flip
    ours = upfirdn2d(x, k, up=up, down=down, pad=pad).numpy()
    np.testing.assert_allclose(ours, _naive_upfirdn2d(x, k, up, down, pad), rtol=1e-12, atol=1e-12)


def _per_sample_modconv(x, weight, styles, demodulate, upsample, blur):
    """The official formulation: one modulated weight per sample."""
    outs = []
    for b in range(x.shape[0]):
        w = weight if styles is None else weight * styles[b][None, :, None, None]
        if demodulate:
            w = w * torch.rsqrt(w.square().sum(dim=(1, 2, 3)) + 1e-8)[:, None, None, None]
        if upsample:
            o = F.conv_transpose2d(x[b:b + 1], w.transpose(0, 1), stride=2)
            o = upfirdn2d(o, blur, pad=(1, 1))
        else:
            o = F.conv2d(x[b:b + 1], w, padding=w.shape[-1] // 2)
        outs.append(o)
    return torch.cat(outs)


@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("demodulate", [False, True])
@pytest.mark.parametrize("modulated", [False, True])
def test_batched_modulated_conv_equals_per_sample(upsample, demodulate, modulated):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64) / 3
    s = torch.rand(3, 5, generator=g, dtype=torch.float64) + 0.5 if modulated else None
    blur = fir_kernel(gain=4.0)
    ours = modulated_conv2d(x, w, s, demodulate, upsample, blur)
    ref = _per_sample_modconv(x, w, s, demodulate, upsample, blur)
    assert ours.shape == ref.shape == (3, 4, 12 if upsample else 6, 12 if upsample else 6)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_gradients_of_ops():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    s = (torch.rand(2, 3, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    blur = fir_kernel(gain=4.0)
    assert torch.autograd.gradcheck(lambda a, b, c: modulated_conv2d(a, b, c, True, True, blur), (x, w, s))
    assert torch.autograd.gradcheck(lambda a: upfirdn2d(a, fir_kernel(), up=2, down=1, pad=(2, 1)), (x,))


# ---------------------------------------------------------------------------------- scaled models
@pytest.mark.parametrize("arch", ["iafaces", "iafaces_cam"])
@pytest.mark.parametrize("size", [32, 64])
def test_scaled_models_forward_and_backward(arch, size):
    cfg = build_model_config(arch, encoder={"size": size, "channel": 8, "channel_max": 32, "content_channels": 32,
                                            "comp_dim": 16},
                             generator={"channel_base": 512, "channel_max": 32},
                             discriminator={"channel_base": 256, "channel_max": 32})
    E, G, D = build_networks(cfg)
    x = torch.rand(2, 3, size, size) * 2 - 1
    mask = (torch.rand(2, 1, size, size) > 0.2).float()
    content, comps = E(x, mask)
    assert content.shape == (2, 32, 4, 4) and comps.shape == (2, 4, 16)
    img = G(content, comps, noise_mode="random")
    assert img.shape == (2, 3, size, size)
    loss = (img - x).abs().mean() + F.softplus(-D(img)).mean()
    loss.backward()
    # The mouth box is empty on 4x4 grids, so CAM layers there get no mouth gradient.
    no_mouth = {f"{n}.cam.fc.2" for n, (res, fs) in zip(["conv1", "convs.0"], G.cam_geometry()[:2]
                                                         if cfg.generator.cam else []) if fs < 8}
    for net in (E, G):
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            if name.rsplit(".", 1)[0] in no_mouth:
                assert p.grad.abs().sum() == 0, name
            else:
                assert p.grad.abs().sum() > 0, name


def test_generator_is_deterministic_with_buffers_and_batch_independent():
    cfg = build_model_config("iafaces_cam", encoder={"size": 32, "channel": 8, "channel_max": 32,
                                                     "content_channels": 32, "comp_dim": 16},
                             generator={"channel_base": 512, "channel_max": 32})
    E, G, _ = build_networks(cfg, discriminator=False)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        c, z = E(x)
        full = G(c, z)
        single = torch.cat([G(c[i:i + 1], z[i:i + 1]) for i in range(3)])
        torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(G(c, z), full)


# ------------------------------------------------------------------------------------------ config
def test_config_rejects_unknown_key_and_lists_valid():
    with pytest.raises(ConfigError, match=r"unknown key 'chanel'.*valid keys:.*channel"):
        build_model_config("iafaces", encoder={"chanel": 8})
    with pytest.raises(ConfigError, match="model_arch"):
        build_model_config("iafaces_512")
    with pytest.raises(ConfigError, match="type int"):
        build_model_config("iafaces", encoder={"channel": "8"})
    with pytest.raises(ConfigError, match="empty|feat_size"):
        build_model_config("iafaces", encoder={"feat_size": 4})
    with pytest.raises(ConfigError, match="must be 32"):
        build_model_config("iafaces_256", encoder={"channel": 16})


def test_model_config_roundtrip():
    cfg = build_model_config("iafaces_cam_1024")
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert cfg.generator.cam_placement == "aligned"
    assert build_model_config("iafaces_cam_256").generator.cam_placement == "official"
    assert build_model_config("iafaces_cam").generator.cam_placement == "aligned"


# ------------------------------------------------------------------------------------- checkpoints
def _released_like_file(path, layout, dtype=torch.float32):
    """Write a file shaped like a released checkpoint: a pickled ``parse_config.ConfigParser``
    holding the JSON config and PosixPath members, OrderedDict state dicts."""
    import collections
    import pathlib

    mod = types.ModuleType("parse_config")

    class ConfigParser:
        pass

    ConfigParser.__module__, ConfigParser.__qualname__ = "parse_config", "ConfigParser"
    mod.ConfigParser = ConfigParser
    sys.modules["parse_config"] = mod
    try:
        parser = ConfigParser()
        parser._config = collections.OrderedDict(
            model_arch=layout["model_arch"],
            encoder={"type": "Encoder", "args": layout["encoder_args"]},
            generator={"type": "Generator", "args": layout["generator_args"]},
            discriminator={"type": "Discriminator", "args": layout["discriminator_args"]})
        parser._save_dir = pathlib.PosixPath("saved/models/x/0101_000000")
        payload = {"epoch": 1, "iteration": 10, "config": parser,
                   "e_ema": collections.OrderedDict(fill_official(layout["e_ema"], dtype)),
                   "g_ema": collections.OrderedDict(fill_official(layout["g_ema"], dtype))}
        torch.save(payload, path)
    finally:
        del sys.modules["parse_config"]


def test_released_cam256_checkpoint_loads_with_official_placement(tmp_path, official_layout, parity_arrays):
    from model.checkpoint import load_models

    name = "iafaces_cam-celebahq-256"
    path = tmp_path / "released.pth"
    _released_like_file(path, official_layout[name])
    models = load_models(path, device="cpu")
    assert models.source == "official" and models.model_config.arch == "iafaces_cam_256"
    assert models.model_config.generator.cam_placement == "official"
    assert not models.encoder.training and not any(p.requires_grad for p in models.generator.parameters())
    E, G = models.encoder.double(), models.generator.double()
    x = torch.from_numpy(np.random.default_rng(7).uniform(-1, 1, (1, 3, 256, 256)))
    with torch.no_grad():
        image = G(*E(x)).numpy()
    ref = parity_arrays[f"{name}/image"]
    assert np.abs(image - ref).max() / np.abs(ref).max() < 1e-4  # weights were stored in float32
    # The editing scripts take the same released-format file.
    import component_transfer
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(
            tmp_path / f"face{i}.png")
    out = tmp_path / "out"
    assert component_transfer.main(["--resume", str(path), "--target", str(tmp_path / "face0.png"),
                                    "--reference", str(tmp_path / "face1.png"), "--component", "mouth",
                                    "--out", str(out), "--device", "cpu"]) == 0
    assert Image.open(out / "face0.png").size == (256, 256)


def test_sample_checkpoint_loads_config_but_not_as_networks(reference_dir):
    from model.checkpoint import load_models, read_checkpoint
    from model.official_checkpoint import CheckpointError

    payload, source = read_checkpoint(reference_dir / "official_checkpoint_format_sample.pth")
    assert source == "official" and payload["config"]["model_arch"] == "iafaces_256"
    with pytest.raises(CheckpointError, match="does not match"):
        load_models(reference_dir / "official_checkpoint_format_sample.pth", device="cpu")


def test_own_checkpoint_roundtrip_and_official_export(tmp_path):
    from model.checkpoint import load_models, save_model_checkpoint, save_official_layout

    cfg = build_model_config("iafaces", encoder={"size": 32, "channel": 8, "channel_max": 32,
                                                 "content_channels": 32, "comp_dim": 16},
                             generator={"channel_base": 512, "channel_max": 32})
    E, G, _ = build_networks(cfg, discriminator=False)
    save_model_checkpoint(tmp_path / "own.pth", E, G, cfg, config={"exp_id": "t"})
    raw = torch.load(tmp_path / "own.pth", weights_only=True)
    json.dumps(raw["model_config"]) and json.dumps(raw["config"])
    models = load_models(tmp_path / "own.pth", device="cpu")
    assert models.source == "project" and models.model_config == cfg and models.config["exp_id"] == "t"
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(models.generator(*models.encoder(x)), G(*E(x)))
    with pytest.raises(ValueError, match="no official counterpart"):
        save_official_layout(tmp_path / "off.pth", models)


def test_official_export_roundtrip(tmp_path, official_layout):
    from model.checkpoint import LoadedModels, load_models, save_official_layout

    layout = official_layout["iafaces-celebahq-256"]
    cfg = _official_cfg(layout)
    E, G, _ = build_networks(cfg, discriminator=False)
    out = tmp_path / "exported.pth"
    save_official_layout(out, LoadedModels(E, G, None, cfg, {}, "project", "", torch.device("cpu")))
    raw = torch.load(out, weights_only=True)
    assert list(raw["g_ema"]) == [e["key"] for e in layout["g_ema"]]
    again = load_models(out, device="cpu")
    assert again.source == "official"
    for a, b in zip(again.generator.state_dict().values(), G.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["fill_components", "outside_components"])
def test_content_branch_does_not_see_the_components(mode):
    """With content_input != image, a face and its copy with another mouth (SynthFaces changes
    only pixels inside the mouth box) share their content tensor exactly; only the mouth
    embedding tells them apart."""
    from data_loader import synthfaces as sf
    from data_loader.synthfaces.dataset import render_batch
    from model import build_model_config
    from model.networks import Encoder

    torch.manual_seed(0)
    cfg = build_model_config("iafaces_cam", encoder={"size": 32, "channel": 8, "channel_max": 32, "feat_size": 8,
                                                     "content_channels": 32, "comp_dim": 16, "content_input": mode},
                             generator={"channel_base": 512, "channel_max": 32})
    E = Encoder(cfg.encoder).eval()
    a, b = sf.sample_factors(0, 3), sf.sample_factors(0, 4)
    x = render_batch([a, sf.transfer(a, b, "mouth")], 32)
    assert not torch.equal(x[0], x[1])
    with torch.no_grad():
        content, comps = E(x)
    assert torch.equal(content[0], content[1])
    assert not torch.allclose(comps[0, 3], comps[1, 3])
    view = E.content_view(x)
    x0, y0, x1, y1 = boxes_at(32)[3]
    inside = view[:, :, y0:y1, x0:x1]
    assert torch.equal(inside, inside[:, :, :1, :1].expand_as(inside))  # one colour per box
    if mode == "outside_components":
        assert inside.abs().max() == 0
    # The image-fed encoder (the official design) does see the mouth in its content tensor.
    cfg_img = build_model_config("iafaces_cam", encoder={**dataclasses.asdict(cfg.encoder), "content_input": "image"},
                                 generator={"channel_base": 512, "channel_max": 32})
    E_img = Encoder(cfg_img.encoder).eval()
    with torch.no_grad():
        c_img, _ = E_img(x)
    assert not torch.equal(c_img[0], c_img[1])


def test_unknown_content_input_is_rejected():
    from model import build_model_config
    with pytest.raises(ConfigError, match="content_input"):
        build_model_config("iafaces", encoder={"size": 64, "content_input": "everything"})


def test_crop_components_see_only_their_own_box():
    """component_input: crops: a face and its copy with another mouth share content and the eye
    and nose embeddings exactly; only the mouth embedding differs. A uniform colour shift of the
    whole face leaves every embedding unchanged (crops are taken relative to the ring colour)."""
    from data_loader import synthfaces as sf
    from data_loader.synthfaces.dataset import render_batch
    from model import build_model_config
    from model.networks import Encoder

    torch.manual_seed(0)
    cfg = build_model_config("iafaces_cam", encoder={"size": 32, "channel": 8, "channel_max": 32, "feat_size": 8,
                                                     "content_channels": 32, "comp_dim": 16, "crop_size": 8,
                                                     "crop_channels": 8, "content_input": "fill_components",
                                                     "component_input": "crops"},
                             generator={"channel_base": 512, "channel_max": 32})
    E = Encoder(cfg.encoder).eval()
    a, b = sf.sample_factors(0, 3), sf.sample_factors(0, 4)
    x = render_batch([a, sf.transfer(a, b, "mouth")], 32)
    with torch.no_grad():
        content, comps = E(x)
        _, shifted = E(x + 0.1)
    assert torch.equal(content[0], content[1])
    assert torch.equal(comps[0, :3], comps[1, :3])
    assert not torch.allclose(comps[0, 3], comps[1, 3])
    assert torch.allclose(shifted, comps, atol=1e-5)
    with pytest.raises(ValueError, match="official"):
        list(E.official_entries())


def test_ring_plane_follows_a_lighting_gradient():
    """ring_fit: plane: the plane through a box's ring reproduces a linear ramp inside the box
    exactly (the ring mean does not), so a ramp added to the face leaves the crop embeddings
    unchanged and fills the content view's boxes with the ramp."""
    from data_loader import synthfaces as sf
    from data_loader.synthfaces.dataset import render_batch
    from model import build_model_config
    from model.boxes import boxes_at
    from model.networks import Encoder
    from model.ops import ring_means, ring_planes

    S = 32
    ramp = (torch.linspace(-0.3, 0.2, S)[None, :] + 0.5 * torch.linspace(-0.2, 0.2, S)[:, None]).expand(1, 3, S, S)
    for (x0, y0, x1, y1), plane in zip(boxes_at(S), ring_planes(ramp, boxes_at(S))):
        torch.testing.assert_close(plane, ramp[:, :, y0:y1, x0:x1], atol=1e-5, rtol=0)
        mean = ring_means(ramp, [(x0, y0, x1, y1)])[:, 0, :, None, None]
        assert float((mean - ramp[:, :, y0:y1, x0:x1]).abs().max()) > 0.05
    torch.manual_seed(0)
    args = {"size": S, "channel": 8, "channel_max": 32, "feat_size": 8, "content_channels": 32, "comp_dim": 16,
            "crop_size": 8, "crop_channels": 8, "content_input": "fill_components", "component_input": "crops"}
    x = render_batch([sf.sample_factors(0, 3)], S)
    for fit, same in (("plane", True), ("mean", False)):
        cfg = build_model_config("iafaces_cam", encoder={**args, "ring_fit": fit},
                                 generator={"channel_base": 512, "channel_max": 32})
        E = Encoder(cfg.encoder).eval()
        with torch.no_grad():
            _, z = E(x)
            _, z_lit = E(x + ramp)
        assert torch.allclose(z, z_lit, atol=1e-4) == same, fit
        if fit == "plane":
            x0, y0, x1, y1 = boxes_at(S)[2]
            view = E.content_view(ramp.clone())
            torch.testing.assert_close(view[:, :, y0:y1, x0:x1], ramp[:, :, y0:y1, x0:x1], atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="ring_fit"):
        build_model_config("iafaces", encoder={"size": 64, "ring_fit": "median"})


def test_exclusive_crops_ignore_pixels_shared_with_another_box():
    """crop_exclusive: a change where the nose box overlaps an eye box (its top row) reaches neither
    embedding, a change in the eye's own pixels still reaches the eye's; without the option the
    shared change reaches both."""
    from data_loader import synthfaces as sf
    from data_loader.synthfaces.dataset import render_batch
    from model import build_model_config
    from model.boxes import boxes_at
    from model.networks import Encoder

    S = 64
    (lx0, ly0, lx1, ly1), _, (nx0, ny0, nx1, ny1), _ = boxes_at(S)
    assert ny0 < ly1 and nx0 < lx1  # the boxes do overlap at this size
    x = render_batch([sf.sample_factors(0, 5)], S)
    y = x.clone()
    y[:, :, ny0:ly1, nx0:lx1] += 0.5
    w = x.clone()
    w[:, :, ly0 + 4:ly0 + 6, lx0 + 3:lx0 + 6] += 0.5
    args = {"size": S, "channel": 8, "channel_max": 32, "feat_size": 16, "content_channels": 32, "comp_dim": 16,
            "crop_size": 16, "crop_channels": 8, "content_input": "fill_components", "component_input": "crops"}
    for exclusive in (True, False):
        torch.manual_seed(0)
        E = Encoder(build_model_config("iafaces_cam", encoder={**args, "crop_exclusive": exclusive},
                                       generator={"channel_base": 512, "channel_max": 32}).encoder).eval()
        with torch.no_grad():
            z, z2, z3 = E(x)[1], E(y)[1], E(w)[1]
        assert torch.allclose(z[:, 2], z2[:, 2], atol=1e-6) == exclusive
        assert torch.allclose(z[:, 0], z2[:, 0], atol=1e-6) == exclusive
        assert not torch.allclose(z[:, 0], z3[:, 0], atol=1e-6) and torch.allclose(z[:, 2], z3[:, 2], atol=1e-6)


def test_exclusive_ring_keeps_glasses_out_of_the_nose_embedding():
    """ring_exclusive: the nose box's ring runs through the eye boxes where a glasses frame passes;
    leaving those ring pixels out of the fit (plane or mean) keeps putting glasses on a face from
    moving the nose embedding (crops relative to the ring), while the eye embeddings still see the
    glasses. A ring left entirely inside another box is refused."""
    from data_loader import synthfaces as sf
    from data_loader.synthfaces.dataset import render_batch
    from model import build_model_config
    from model.networks import Encoder
    from model.ops import ring_means, ring_planes

    S = 64
    faces = [sf.sample_factors(0, i) for i in range(12)]
    on = render_batch([sf.flip_attribute(f, "Eyeglasses", True) for f in faces], S)
    off = render_batch([sf.flip_attribute(f, "Eyeglasses", False) for f in faces], S)
    args = {"size": S, "channel": 8, "channel_max": 32, "feat_size": 16, "content_channels": 32, "comp_dim": 16,
            "crop_size": 16, "crop_channels": 8, "content_input": "fill_components", "component_input": "crops",
            "crop_exclusive": True}
    for fit in ("plane", "mean"):
        moved = {}
        for exclusive in (True, False):
            torch.manual_seed(0)
            E = Encoder(build_model_config("iafaces_cam", encoder={**args, "ring_fit": fit, "ring_exclusive": exclusive},
                                           generator={"channel_base": 512, "channel_max": 32}).encoder).eval()
            with torch.no_grad():
                moved[exclusive] = (E(on)[1] - E(off)[1]).norm(dim=-1).mean(0)  # [4]
        assert moved[True][2] < 0.02 * moved[False][2], (fit, moved)
        assert moved[True][0] > 0.5 * moved[False][0] and moved[True][3] == 0, (fit, moved)
        with torch.device("meta"):  # as checkpoint loading sizes the networks
            Encoder(build_model_config("iafaces_cam", encoder={**args, "ring_fit": fit, "ring_exclusive": True},
                                       generator={"channel_base": 512, "channel_max": 32}).encoder)
    nested = [(2, 2, 4, 4), (1, 1, 6, 6)]
    x = torch.zeros(1, 3, 8, 8)
    ring_means(x, nested)  # the rings as they are: fine
    with pytest.raises(ValueError, match="ring"):
        ring_means(x, nested, exclusive=True)
    with pytest.raises(ValueError, match="ring"):
        ring_planes(x, nested, exclusive=True)


def test_bad_component_input_and_crop_size_are_rejected():
    from model import build_model_config
    with pytest.raises(ConfigError, match="component_input"):
        build_model_config("iafaces", encoder={"size": 64, "component_input": "pixels"})
    with pytest.raises(ConfigError, match="crop_size"):
        build_model_config("iafaces", encoder={"size": 64, "crop_size": 12})


def test_component_paint_adds_patches_only_inside_the_boxes():
    """generator.component_paint: each embedding is decoded into a patch inside its own box at
    that resolution; outside the boxes the features are untouched, and changing one embedding
    changes only its own box."""
    from model import build_model_config
    from model.networks import Generator

    torch.manual_seed(0)
    cfg = build_model_config("iafaces_cam", encoder={"size": 32, "channel": 8, "channel_max": 32, "feat_size": 8,
                                                     "content_channels": 16, "comp_dim": 8},
                             generator={"channel_base": 512, "channel_max": 32, "component_paint": 16})
    G = Generator(cfg.generator).eval()
    x = torch.randn(2, cfg.generator.channels(16), 16, 16)
    comps = torch.randn(2, 4, 8)
    out = G.paint_components(x, comps)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes_at(16):
        inside[y0:y1, x0:x1] = True
    assert torch.equal(out[..., ~inside], x[..., ~inside])
    assert not torch.allclose(out[..., inside], x[..., inside])
    other = comps.clone()
    other[:, 3] += 1
    diff = (G.paint_components(x, other) - out).abs().sum((0, 1)) > 0
    x0, y0, x1, y1 = boxes_at(16)[3]
    mouth = torch.zeros(16, 16, dtype=torch.bool)
    mouth[y0:y1, x0:x1] = True
    assert diff.any() and not (diff & ~mouth).any()
    assert G(torch.randn(2, 16, 4, 4), comps).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="official"):
        list(G.official_entries())
    with pytest.raises(ConfigError, match="component_paint"):
        build_model_config("iafaces_cam", encoder={"size": 32, "feat_size": 8}, generator={"component_paint": 24})
