"""Editing (editing/): the Editor API on a tiny random-weight 32-px model, attribute boundaries
(the release's recipe and the project's), presets, bf16."""
import numpy as np
import pytest
import torch

from tests.helpers import SIZE, editing_work, save_tiny_checkpoint


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny SynthFaces-marked checkpoint and a folder of input faces (one 48 px, one grayscale)."""
    return editing_work(tmp_path_factory.mktemp("editing"))


def test_api_shapes_and_transfer_only_moves_requested_components(work):
    from editing import Editor, EditingError

    ed = Editor.from_checkpoint(work["ckpt"], device="cpu", batch_size=2)
    x = torch.rand(3, 3, SIZE, SIZE) * 2 - 1
    content, z = ed.encode(x)
    assert content.shape == (3, 32, 4, 4) and z.shape == (3, 4, 16)
    y = ed.reconstruct(x)
    assert y.shape == (3, 3, SIZE, SIZE) and y.abs().max() <= 1
    torch.testing.assert_close(ed.decode(content, z), y)  # deterministic (noise buffers)

    _, z_ref = ed.encode(torch.rand(3, 3, SIZE, SIZE) * 2 - 1)
    for spec, moved in (("eyes", [0, 1]), ("l_eye", [0]), ("r_eye", [1]), ("nose", [2]), ("mouth", [3]),
                        ("eyes,mouth", [0, 1, 3])):
        out = Editor.transfer(z, z_ref, spec)
        for i in range(4):
            torch.testing.assert_close(out[:, i], (z_ref if i in moved else z)[:, i], rtol=0, atol=0)
    one = Editor.transfer(z, z_ref[:1], "nose")  # one reference for every target
    assert torch.equal(one[:, 2], z_ref[:1, 2].expand(3, -1)) and torch.equal(one[:, [0, 1, 3]], z[:, [0, 1, 3]])
    with pytest.raises(EditingError, match="unknown component 'ears'.*eyes, l_eye"):
        Editor.transfer(z, z_ref, "ears")

@pytest.mark.slow
def test_boundary_refitted_for_other_weights_or_corrupt_file(work, tmp_path):
    from editing.boundaries import SynthFacesLabels, get_boundary
    from editing import Editor

    logs = []
    ed = Editor.from_checkpoint(work["ckpt"], device="cpu", batch_size=50)
    src = SynthFacesLabels(SIZE, 100, 0)
    bdir = tmp_path / "b"
    get_boundary(ed, "No_Beard", bdir, source=src, log=logs.append)
    assert get_boundary(ed, "no_beard", bdir, source=src, log=logs.append).attribute == "No_Beard"
    assert sum("fitted boundary" in m for m in logs) == 1
    # Same path, other weights (e.g. training went on): the stored boundary is not reused.
    ckpt2 = save_tiny_checkpoint(tmp_path / "other.pth", seed=1, config={})
    get_boundary(Editor.from_checkpoint(ckpt2, device="cpu"), "No_Beard", bdir, source=src, log=logs.append)
    assert any("other encoder weights" in m for m in logs) and sum("fitted boundary" in m for m in logs) == 2
    (bdir / "No_Beard.pt").write_bytes(b"junk")
    get_boundary(ed, "No_Beard", bdir, source=src, log=logs.append)
    assert any("unreadable" in m for m in logs) and sum("fitted boundary" in m for m in logs) == 3

def test_checkpoint_config_names_the_default_boundary_recipe(work, tmp_path):
    """editing.boundary_recipe in the training config: the editing tools fit with it unless told
    otherwise; checkpoints whose config names none keep the release's recipe."""
    from editing import Editor
    from editing.boundaries import SynthFacesLabels, get_boundary

    ed = Editor.from_checkpoint(work["ckpt"], device="cpu", batch_size=50)
    assert ed.boundary_recipe == "release"
    src = SynthFacesLabels(SIZE, 100, 0)
    ed.config = {**ed.config, "editing": {"boundary_recipe": "conditional"}}
    b = get_boundary(ed, "No_Beard", tmp_path / "b", source=src, log=lambda m: None)
    assert b.recipe == "conditional" and b.protocol["covariates"] == len(src.attribute_names) - 1
    assert get_boundary(ed, "No_Beard", tmp_path / "b", source=src, recipe="mean", log=lambda m: None).recipe == "mean"

def test_release_recipe_selection_and_svc_on_raw_embeddings():
    """InterFaceGAN's recipe as the release runs it: first m = min(n_pos, n_neg) of each, chosen =
    min(int(0.47 * 2m), m) per end, int(0.7 * chosen) per end for training, SVC(kernel='linear') on the
    raw embeddings, normal coef / ||coef|| in float32; seeded, so it is reproducible."""
    from sklearn.svm import SVC

    from editing.boundaries import fit_boundary, release_split

    rng = np.random.default_rng(0)
    n_pos, n_neg, d = 30, 50, 6
    scale = np.array([0.05, 0.1, 1.0, 3.0, 10.0, 30.0])  # unequal per-dimension scales
    y = np.array([True] * n_pos + [False] * n_neg)
    rng.shuffle(y)
    X = rng.normal(size=(len(y), 4, d)) * scale
    X[y, :, :] += 0.8 * scale  # separable-ish along every dimension
    tr, va, m, chosen = release_split(y, seed=3)
    assert (m, chosen) == (30, 28) and len(tr) == 2 * 19 and len(va) == 2 * 9  # int(0.94 * 30) = 28, int(19.6) = 19
    first_pos, first_neg = np.flatnonzero(y)[:m], np.flatnonzero(~y)[:m]
    assert set(tr[:19]) | set(va[:9]) <= set(first_pos[:28]) and set(tr[19:]) | set(va[9:]) <= set(first_neg[2:])
    assert y[tr[:19]].all() and not y[tr[19:]].any()
    b = fit_boundary(X, y, "Thing", seed=3)
    assert b.recipe == "release" and b.protocol["seed"] == 3 and b.counts["train"] == 38 and b.counts["val"] == 18
    for i in range(4):
        clf = SVC(kernel="linear").fit(X[tr, i], y[tr].astype(int))
        a = clf.coef_.reshape(-1).astype(np.float32)
        np.testing.assert_allclose(b.normals[i].numpy(), a / np.linalg.norm(a), rtol=1e-5, atol=1e-6)
    again = fit_boundary(X, y, "Thing", seed=3)
    assert torch.equal(again.normals, b.normals)  # reproducible
    # The standardized LinearSVC fit gives another direction on codes with unequal scales.
    std = fit_boundary(X, y, "Thing", seed=3, recipe="standardized")
    cos = (std.normals * b.normals).sum(-1)
    assert std.recipe == "standardized" and float(cos.min()) < 0.99
    # The mean recipe: the unit difference of the training faces' class means, on the same split,
    # its boundary half-way between them.
    mean = fit_boundary(X, y, "Thing", seed=3, recipe="mean")
    assert mean.recipe == "mean" and mean.counts["train"] == 38
    for i in range(4):
        mu_p, mu_n = X[tr[:19], i].mean(0), X[tr[19:], i].mean(0)
        w = (mu_p - mu_n) / np.linalg.norm(mu_p - mu_n)
        np.testing.assert_allclose(mean.normals[i].numpy(), w, rtol=1e-5, atol=1e-6)
        mid = (mu_p + mu_n) / 2
        assert abs(float(mid @ mean.normals[i].numpy().astype(np.float64)) + float(mean.offsets[i])) < 1e-4

def test_conditional_recipe_separates_an_attribute_from_a_correlated_companion():
    """A companion label that goes with the attribute 80 % of the time moves the embedding along
    another axis: the mean recipe's normal leans toward it, the conditional recipe's does not."""
    from editing.boundaries import BoundaryError, fit_boundary

    rng = np.random.default_rng(1)
    n, d = 600, 8
    y = rng.random(n) < 0.5
    companion = np.where(rng.random(n) < 0.8, y, ~y)
    X = rng.normal(scale=0.1, size=(n, 4, d))
    X[:, :, 0] += y[:, None]  # the attribute's own axis
    X[:, :, 1] += 2.0 * companion[:, None]  # the companion's
    mean = fit_boundary(X, y, "Thing", recipe="mean")
    cond = fit_boundary(X, y, "Thing", recipe="conditional", covariates=companion[:, None])
    assert cond.recipe == "conditional" and cond.protocol["covariates"] == 1
    assert float(mean.normals[:, 1].abs().min()) > 0.6  # the companion's axis dominates the mean difference
    assert float(cond.normals[:, 0].min()) > 0.99 and float(cond.normals[:, 1].abs().max()) < 0.05
    assert min(cond.val_accuracy) > 0.95
    with pytest.raises(BoundaryError, match="needs the other labels"):
        fit_boundary(X, y, "Thing", recipe="conditional")

def test_presets_add_their_attribute_with_the_release_lists(reference_dir):
    from editing import PRESETS

    lists = reference_dir / "official_eval_lists"
    assert {k: (p.components, p.strength) for k, p in PRESETS.items()} == {
        "mouth_open": ("mouth", 4.0), "beard": ("mouth", 9.0), "bushy": ("eyes", 2.5), "bags": ("eyes", 2.5),
        "arched": ("eyes", 5.0), "narrow_eyes": ("eyes", 2.0), "male": ("all", 2.5)}
    for p in PRESETS.values():
        assert (lists / "boundary_lists" / f"{p.positive_list}.txt").is_file()
        assert (lists / "boundary_lists" / f"{p.negative_list}.txt").is_file()
        assert (lists / "attr_lists" / f"{p.inputs}.txt").is_file()
    beard = PRESETS["beard"]
    assert (beard.attribute, beard.sign, beard.label_strength(9.0)) == ("No_Beard", -1, -9.0)
    assert (beard.positive_list, beard.negative_list, beard.inputs) == ("beard", "no_beard", "no_beard")
    assert all(p.sign == 1 for k, p in PRESETS.items() if k != "beard")

def test_bf16_precision_is_close_to_fp32(tiny_model_config):
    import copy

    from editing import Editor, EditingError
    from model import build_networks

    torch.manual_seed(0)
    cfg = tiny_model_config("iafaces_cam")
    E, G, _ = build_networks(cfg, discriminator=False)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    a = Editor(E, G, torch.device("cpu")).reconstruct(x)
    b = Editor(copy.deepcopy(E), copy.deepcopy(G), torch.device("cpu"), precision="bf16").reconstruct(x)
    assert a.dtype == b.dtype == torch.float32
    assert not torch.equal(a, b) and (a - b).abs().max() < 0.1
    with pytest.raises(EditingError, match="precision"):
        Editor(E, G, torch.device("cpu"), precision="fp8")


def test_auto_precision_follows_the_devices_native_bf16(tiny_model_config, monkeypatch):
    """``auto`` (the scripts' and the web page's default) is bf16 + channels-last exactly where
    :func:`utils.device.native_bf16` says the device computes bf16 natively, else fp32."""
    import editing.editor as ed
    from model import build_networks

    E, G, _ = build_networks(tiny_model_config("iafaces"), discriminator=False)
    conv = next(p for p in G.parameters() if p.dim() == 4 and p.shape[-1] > 1)
    for native, expected in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(ed, "native_bf16", lambda device, n=native: n)
        editor = ed.Editor(E, G, torch.device("cpu"), precision="auto")
        assert editor.precision == expected
        assert conv.is_contiguous(memory_format=torch.channels_last) == (expected == "bf16")
    monkeypatch.setattr(ed, "native_bf16", lambda device: True)
    assert ed.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    # A GPU edits one face faster in fp32 (TF32) than in bf16 (measured on an H200).
    assert ed.resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert ed.resolve_precision("bf16", torch.device("cuda")) == "bf16"


def test_threads_option_sets_torchs_threads_and_refuses_zero():
    from utils.device import set_threads
    from utils.errors import UserError

    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        set_threads(None)
        assert torch.get_num_threads() == 1
        with pytest.raises(UserError, match="--threads 0"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)
