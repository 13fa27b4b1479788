"""The release's networks (model/networks.py): parity with the official implementation, the
official layouts and conversion both ways, CAM placement, the scalable architectures."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model import build_model_config, build_networks
from model.boxes import boxes_at
from model.convert import ConversionError, load_official_state_dict, official_keys, official_to_own, own_to_official
from tests.helpers import fill_official, official_model_config

CONFIGS_256 = ["iafaces-celebahq-256", "iafaces_cam-celebahq-256"]
CONFIGS_1024 = ["iafaces-ffhq-1024", "iafaces_cam-ffhq-1024"]


# ------------------------------------------------------------------------------------------ boxes
def test_boxes_match_reference_table(reference_dir):
    text = (reference_dir / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", text, re.M)
    assert len(rows) == 6
    for fs, *boxes in rows:
        expected = tuple(tuple(int(v) for v in b.split(",")) for b in boxes)
        assert boxes_at(int(fs)) == expected, fs


# ----------------------------------------------------------------------------------------- parity
@pytest.mark.slow
def test_parity_with_official_256(official_layout, parity_arrays):
    """Both official 256-px models against the official outputs, in float64. Their encoders and
    discriminators have the same layout, hence the same filled weights (asserted), so the encoder
    and D(x) run once; each generator decodes the shared encoding."""
    layouts = [official_layout[name] for name in CONFIGS_256]
    for part in ("e_ema", "d"):
        assert layouts[0][part] == layouts[1][part], part
    x = torch.from_numpy(np.random.default_rng(7).uniform(-1, 1, (1, 3, 256, 256)))
    x2 = torch.from_numpy(np.random.default_rng(8).uniform(-1, 1, (1, 3, 256, 256)))
    shared = None
    for name, layout in zip(CONFIGS_256, layouts):
        E, G, D = build_networks(official_model_config(layout))
        E, G, D = E.double(), G.double(), D.double()
        for net, part in ((E, "e_ema"), (G, "g_ema"), (D, "d")):
            load_official_state_dict(net, fill_official(layout[part]), part)
        with torch.no_grad():
            if shared is None:
                content, comps = E(x, torch.ones(1, 1, 256, 256, dtype=torch.float64))
                shared = {"content": content, "components": comps, "components_second": E(x2)[1], "d_input": D(x)}
            image = G(shared["content"], shared["components"])
            ours = {**shared, "image": image, "d_output": D(image)}
        for key, value in ours.items():
            ref = parity_arrays[f"{name}/{key}"]
            assert value.shape == ref.shape, key
            rel = np.abs(value.numpy() - ref).max() / np.abs(ref).max()
            assert rel < 1e-6, f"{name}/{key}: relative error {rel:.3g}"


@pytest.mark.parametrize("name", CONFIGS_256 + CONFIGS_1024)
def test_official_layout_keys_and_shapes(name, official_layout):
    layout = official_layout[name]
    E, G, D = build_networks(official_model_config(layout))
    for net, part in ((E, "e_ema"), (G, "g_ema"), (D, "d")):
        theirs = [(e["key"], tuple(e["shape"])) for e in layout[part]]
        assert official_keys(net) == theirs, part


@pytest.mark.parametrize("name", CONFIGS_1024)
def test_1024_converts_both_ways(name, official_layout):
    layout = official_layout[name]
    E, G, D = build_networks(official_model_config(layout))
    for net, part in ((E, "e_ema"), (G, "g_ema"), (D, "d")):
        official = fill_official(layout[part], dtype=torch.float32)
        load_official_state_dict(net, official, part)
        back = own_to_official(net)
        assert list(back) == [e["key"] for e in layout[part]]
        for key, value in official.items():
            assert torch.equal(back[key], value), key


def test_conversion_rejects_wrong_architecture(official_layout):
    E, _, _ = build_networks(official_model_config(official_layout["iafaces-ffhq-1024"]), discriminator=False)
    with pytest.raises(ConversionError, match="missing"):
        official_to_own(E, fill_official(official_layout["iafaces-celebahq-256"]["e_ema"]))


@pytest.mark.slow
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


# ---------------------------------------------------------------------------------- scaled models
@pytest.mark.parametrize("arch", ["iafaces", "iafaces_cam"])
@pytest.mark.parametrize("size", [32, 64])
def test_scaled_models_forward_and_backward(arch, size, tiny_model_config):
    cfg = tiny_model_config(arch, encoder={"size": size})
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


def test_generator_is_deterministic_with_buffers_and_batch_independent(tiny_model_config):
    cfg = tiny_model_config("iafaces_cam")
    E, G, _ = build_networks(cfg, discriminator=False)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        c, z = E(x)
        full = G(c, z)
        single = torch.cat([G(c[i:i + 1], z[i:i + 1]) for i in range(3)])
        torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(G(c, z), full)


