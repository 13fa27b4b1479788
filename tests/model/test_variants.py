"""The project's network variants (model/variants/): the box encoder (what the content branch sees
of the boxes, crop embeddings, ring colours), the painting generator and the one-code encoder."""
import pytest
import torch

from data_loader import synthfaces as sf
from data_loader.synthfaces.dataset import render_batch
from model import build_networks
from model.boxes import boxes_at
from model.config import ARCHITECTURES, ConfigError
from model.networks import Encoder
from model.variants import BoxEncoder, OneCodeEncoder, PaintingGenerator
from model.variants.rings import ring_means, ring_planes
from tests.helpers import SIZE

BOX = {"encoder": "BoxEncoder"}
PAINT = {"generator": "PaintingGenerator"}


@pytest.mark.parametrize("mode", ["fill_components", "outside_components"])
def test_content_branch_does_not_see_the_components(mode, tiny_model_config):
    """With content_input != image, a face and its copy with another mouth (SynthFaces changes
    only pixels inside the mouth box) share their content tensor exactly; only the mouth
    embedding tells them apart."""
    torch.manual_seed(0)
    cfg = tiny_model_config("iafaces_cam", types=BOX, encoder={"content_input": mode, "component_input": "features"})
    E = BoxEncoder(cfg.encoder).eval()
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
    E_img = build_networks(tiny_model_config("iafaces_cam"), discriminator=False)[0].eval()
    assert type(E_img) is Encoder
    with torch.no_grad():
        c_img, _ = E_img(x)
    assert not torch.equal(c_img[0], c_img[1])


def test_crop_components_see_only_their_own_box(tiny_model_config):
    """component_input: crops: a face and its copy with another mouth share content and the eye
    and nose embeddings exactly; only the mouth embedding differs. A uniform colour shift of the
    whole face leaves every embedding unchanged (crops are taken relative to the ring colour)."""
    torch.manual_seed(0)
    cfg = tiny_model_config("iafaces_cam", types=BOX, encoder={"crop_size": 8, "crop_channels": 8,
                                                               "content_input": "fill_components",
                                                               "component_input": "crops"})
    E = BoxEncoder(cfg.encoder).eval()
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


def test_selective_forward_computes_only_what_is_asked(tiny_model_config):
    """``content_rows`` and ``needed``: the content of the first rows and the asked-for embeddings
    equal the full forward's; the others are zeros that take no gradient."""
    torch.manual_seed(0)
    cfg = tiny_model_config("iafaces_cam", types=BOX, encoder={"crop_size": 8, "crop_channels": 8,
                                                               "content_input": "fill_components",
                                                               "component_input": "crops"})
    E = BoxEncoder(cfg.encoder)
    assert E.selective
    x = (torch.rand(5, 3, 32, 32) * 2 - 1).requires_grad_(True)
    needed = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    content, comps = E(x)
    c_sel, k_sel = E(x, content_rows=2, needed=needed)
    assert c_sel.shape == (2, *content.shape[1:])
    torch.testing.assert_close(c_sel, content[:2], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(k_sel[needed], comps[needed], rtol=1e-5, atol=1e-6)
    assert k_sel[~needed].abs().max() == 0
    (grad,) = torch.autograd.grad((k_sel * torch.randn_like(k_sel)).sum() + c_sel.sum(), x)  # layer-normed: not .sum()
    assert grad[3].abs().max() == 0 and grad[2].abs().max() > 0  # image 3: nothing asked of it


def test_ring_plane_follows_a_lighting_gradient(tiny_model_config):
    """ring_fit: plane: the plane through a box's ring reproduces a linear ramp inside the box
    exactly (the ring mean does not), so a ramp added to the face leaves the crop embeddings
    unchanged and fills the content view's boxes with the ramp."""
    S = 32
    ramp = (torch.linspace(-0.3, 0.2, S)[None, :] + 0.5 * torch.linspace(-0.2, 0.2, S)[:, None]).expand(1, 3, S, S)
    for (x0, y0, x1, y1), plane in zip(boxes_at(S), ring_planes(ramp, boxes_at(S))):
        torch.testing.assert_close(plane, ramp[:, :, y0:y1, x0:x1], atol=1e-5, rtol=0)
        mean = ring_means(ramp, [(x0, y0, x1, y1)])[:, 0, :, None, None]
        assert float((mean - ramp[:, :, y0:y1, x0:x1]).abs().max()) > 0.05
    torch.manual_seed(0)
    args = {"crop_size": 8, "crop_channels": 8, "content_input": "fill_components", "component_input": "crops"}
    x = render_batch([sf.sample_factors(0, 3)], S)
    for fit, same in (("plane", True), ("mean", False)):
        cfg = tiny_model_config("iafaces_cam", types=BOX, encoder={**args, "ring_fit": fit})
        E = BoxEncoder(cfg.encoder).eval()
        with torch.no_grad():
            _, z = E(x)
            _, z_lit = E(x + ramp)
        assert torch.allclose(z, z_lit, atol=1e-4) == same, fit
        if fit == "plane":
            x0, y0, x1, y1 = boxes_at(S)[2]
            view = E.content_view(ramp.clone())
            torch.testing.assert_close(view[:, :, y0:y1, x0:x1], ramp[:, :, y0:y1, x0:x1], atol=1e-5, rtol=0)


def test_exclusive_crops_ignore_pixels_shared_with_another_box(tiny_model_config):
    """crop_exclusive: a change where the nose box overlaps an eye box (its top row) reaches neither
    embedding, a change in the eye's own pixels still reaches the eye's; without the option the
    shared change reaches both."""
    S = 64
    (lx0, ly0, lx1, ly1), _, (nx0, ny0, nx1, ny1), _ = boxes_at(S)
    assert ny0 < ly1 and nx0 < lx1  # the boxes do overlap at this size
    x = render_batch([sf.sample_factors(0, 5)], S)
    y = x.clone()
    y[:, :, ny0:ly1, nx0:lx1] += 0.5
    w = x.clone()
    w[:, :, ly0 + 4:ly0 + 6, lx0 + 3:lx0 + 6] += 0.5
    args = {"size": S, "feat_size": 16, "crop_size": 16, "crop_channels": 8, "content_input": "fill_components",
            "component_input": "crops"}
    for exclusive in (True, False):
        torch.manual_seed(0)
        E = BoxEncoder(tiny_model_config("iafaces_cam", types=BOX,
                                         encoder={**args, "crop_exclusive": exclusive}).encoder).eval()
        with torch.no_grad():
            z, z2, z3 = E(x)[1], E(y)[1], E(w)[1]
        assert torch.allclose(z[:, 2], z2[:, 2], atol=1e-6) == exclusive
        assert torch.allclose(z[:, 0], z2[:, 0], atol=1e-6) == exclusive
        assert not torch.allclose(z[:, 0], z3[:, 0], atol=1e-6) and torch.allclose(z[:, 2], z3[:, 2], atol=1e-6)


def test_exclusive_ring_keeps_glasses_out_of_the_nose_embedding(tiny_model_config):
    """ring_exclusive: the nose box's ring runs through the eye boxes where a glasses frame passes;
    leaving those ring pixels out of the fit (plane or mean) keeps putting glasses on a face from
    moving the nose embedding (crops relative to the ring), while the eye embeddings still see the
    glasses. A ring left entirely inside another box is refused."""
    S = 64
    faces = [sf.sample_factors(0, i) for i in range(12)]
    on = render_batch([sf.flip_attribute(f, "Eyeglasses", True) for f in faces], S)
    off = render_batch([sf.flip_attribute(f, "Eyeglasses", False) for f in faces], S)
    args = {"size": S, "feat_size": 16, "crop_size": 16, "crop_channels": 8, "content_input": "fill_components",
            "component_input": "crops", "crop_exclusive": True}
    for fit in ("plane", "mean"):
        moved = {}
        for exclusive in (True, False):
            torch.manual_seed(0)
            cfg = tiny_model_config("iafaces_cam", types=BOX,
                                    encoder={**args, "ring_fit": fit, "ring_exclusive": exclusive})
            E = BoxEncoder(cfg.encoder).eval()
            with torch.no_grad():
                moved[exclusive] = (E(on)[1] - E(off)[1]).norm(dim=-1).mean(0)  # [4]
        assert moved[True][2] < 0.02 * moved[False][2], (fit, moved)
        assert moved[True][0] > 0.5 * moved[False][0] and moved[True][3] == 0, (fit, moved)
        with torch.device("meta"):  # as checkpoint loading sizes the networks
            BoxEncoder(tiny_model_config("iafaces_cam", types=BOX,
                                         encoder={**args, "ring_fit": fit, "ring_exclusive": True}).encoder)
    nested = [(2, 2, 4, 4), (1, 1, 6, 6)]
    x = torch.zeros(1, 3, 8, 8)
    ring_means(x, nested)  # the rings as they are: fine
    with pytest.raises(ValueError, match="ring"):
        ring_means(x, nested, exclusive=True)
    with pytest.raises(ValueError, match="ring"):
        ring_planes(x, nested, exclusive=True)


def test_component_paint_adds_patches_only_inside_the_boxes(tiny_model_config):
    """generator.component_paint: each embedding is decoded into a patch inside its own box at
    that resolution; outside the boxes the features are untouched, and changing one embedding
    changes only its own box."""
    torch.manual_seed(0)
    cfg = tiny_model_config("iafaces_cam", types=PAINT, encoder={"content_channels": 16, "comp_dim": 8},
                            generator={"component_paint": 16})
    G = PaintingGenerator(cfg.generator).eval()
    x = torch.randn(2, cfg.generator.channels(16), 16, 16)
    comps = torch.randn(2, 4, 8)
    out = G.edit_features(x, comps)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes_at(16):
        inside[y0:y1, x0:x1] = True
    assert torch.equal(out[..., ~inside], x[..., ~inside])
    assert not torch.allclose(out[..., inside], x[..., inside])
    other = comps.clone()
    other[:, 3] += 1
    diff = (G.edit_features(x, other) - out).abs().sum((0, 1)) > 0
    x0, y0, x1, y1 = boxes_at(16)[3]
    mouth = torch.zeros(16, 16, dtype=torch.bool)
    mouth[y0:y1, x0:x1] = True
    assert diff.any() and not (diff & ~mouth).any()
    assert G(torch.randn(2, 16, 4, 4), comps).shape == (2, 3, 32, 32)
    # At any other resolution the features pass unchanged.
    other_res = torch.randn(2, cfg.generator.channels(8), 8, 8)
    assert torch.equal(G.edit_features(other_res, comps), other_res)
    with pytest.raises(ValueError, match="official"):
        list(G.official_entries())


def test_one_code_arch_content_is_input_independent(tmp_path, tiny_model_config):
    from model.checkpoint import load_models, save_model_checkpoint

    assert ARCHITECTURES["one_code"][1] is False  # scalable, not official
    cfg = tiny_model_config("one_code")
    E, G, D = build_networks(cfg)
    assert isinstance(E, OneCodeEncoder) and cfg.arch == "one_code" and cfg.types["encoder"] == "OneCodeEncoder"
    x = torch.rand(3, 3, SIZE, SIZE) * 2 - 1
    content, comps = E(x)
    content2, comps2 = E(-x, torch.zeros(3, 1, SIZE, SIZE))
    assert content.shape == (3, 32, 4, 4) and comps.shape == (3, 4, 16)
    torch.testing.assert_close(content, content2, rtol=0, atol=0)
    torch.testing.assert_close(content[0], content[2], rtol=0, atol=0)
    assert not torch.allclose(comps, comps2)
    y = G(content, comps)
    assert y.shape == (3, 3, SIZE, SIZE)
    y.square().mean().backward()
    assert E.content.grad is not None and E.content.grad.abs().sum() > 0  # learned constant
    save_model_checkpoint(tmp_path / "oc.pth", E, G, cfg)
    m = load_models(tmp_path / "oc.pth", device="cpu")
    assert isinstance(m.encoder, OneCodeEncoder)
    with pytest.raises(ValueError, match="official"):
        list(E.official_entries())
    with pytest.raises(ConfigError, match="component_channels"):
        tiny_model_config("one_code", encoder={"component_channels": 8})
