"""The project's counterfactual loss (trainer/counterfactual.py): the adversarial term from
gan_start, L1 inside the boxes, and swapped embeddings supervised by SynthFaces' rendered
counterfactuals (pairs, box loss, both eyes at once)."""
import math

import numpy as np
import pytest
import torch

from model.config import ConfigError
from tests.helpers import tiny_config, tiny_trainer
from trainer.config import parse_config

#: The box encoder of these tests: boxes filled with their ring colour, embeddings from 8-px crops.
BOX_ENCODER = {"type": "BoxEncoder", "args": {"crop_size": 8, "content_input": "fill_components",
                                              "component_input": "crops"}}


def counterfactual(**args) -> dict:
    """The tiny config with the counterfactual loss (without LPIPS), its ``args`` given."""
    cfg = tiny_config()
    cfg["loss"] = {"type": "CounterfactualLoss", "args": {"p_loss_weight": 0, **args}}
    return cfg


def swapping(**args) -> dict:
    """The tiny config with the box encoder and swap pairs (no adversarial term)."""
    cfg = counterfactual(g_loss_weight=0, swap_weight=1.0, **args)
    cfg["encoder"]["type"] = "BoxEncoder"
    cfg["encoder"]["args"].update(BOX_ENCODER["args"])
    return cfg


def test_gan_start_skips_the_discriminator_until_then(tmp_path):
    torch.manual_seed(0)
    tr = tiny_trainer(tmp_path, counterfactual(g_loss_weight=0.1, d_reg_every=2, r1=1, gan_start=2))
    assert [tr.loss.uses_discriminator(i) for i in range(4)] == [False, False, True, True]
    batch = next(iter(tr.epoch_batches(0, 0)))
    d0 = [p.detach().clone() for p in tr.D.parameters()]
    for it in range(2):
        tr.iteration = it
        logs = tr.train_step(batch)
        assert "loss_d" not in logs and logs["g_adv"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(d0, tr.D.parameters()))
    tr.iteration = 2
    logs = tr.train_step(batch)
    assert "loss_d" in logs and logs["g_adv"] != 0.0
    assert any(not torch.equal(a, b) for a, b in zip(d0, tr.D.parameters()))

def test_box_l1_weight_adds_the_in_box_error(tmp_path):
    from model.boxes import boxes_at, component_box_mask

    m = component_box_mask(32)
    assert m.shape == (1, 1, 32, 32) and m.sum() > 0
    x0, y0, x1, y1 = boxes_at(32)[3]
    assert m[0, 0, y0:y1, x0:x1].min() == 1 and m[0, 0, 0, 0] == 0
    torch.manual_seed(0)
    tr = tiny_trainer(tmp_path, counterfactual(g_loss_weight=0.0, box_l1_weight=2.0))
    assert tr.D is None and tr.loss.swap is None and torch.equal(tr.loss.box_mask, m)
    batch = next(iter(tr.epoch_batches(0, 0)))
    tr.iteration = 0
    logs = tr.train_step(batch)
    assert logs["box_l1"] > 0 and logs["loss_g"] == pytest.approx(logs["l1"] + 2.0 * logs["box_l1"], rel=1e-5)
    with pytest.raises(ConfigError, match="box_l1_weight"):
        parse_config(counterfactual(box_l1_weight=-1))

def test_swap_pairs_supervise_a_swapped_embedding_with_the_rendered_counterfactual(tmp_path):
    """loss.swap_weight: the pairs of an iteration depend on (seed, iteration) only; each truth is
    the target with one component's factors from the reference (it differs from the target only
    around that component); the step logs the swap loss and reaches the encoder through the
    reference's embedding too."""
    from data_loader.synthfaces.dataset import transfer_pairs
    from model.boxes import COMPONENTS, boxes_at

    torch.manual_seed(0)
    tr = tiny_trainer(tmp_path, swapping(swap_pairs=3))
    assert type(tr.E).__name__ == "BoxEncoder"
    a, b = tr.loss.swap.batch(7), tr.loss.swap.batch(7)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], tr.loss.swap.batch(8)[0])
    target, reference, truth, take = a
    assert target.shape == truth.shape == (3, 3, 32, 32) and take.shape == (3, 4) and (take.sum(1) == 1).all()
    for k in range(3):
        comp = int(take[k].nonzero())
        x0, y0, x1, y1 = boxes_at(32)[comp]
        changed = (target[k] - truth[k]).abs().sum(0) > 0
        outside = changed.clone()
        outside[max(y0 - 2, 0):y1 + 2, max(x0 - 2, 0):x1 + 2] = False
        assert not outside.any(), COMPONENTS[comp]
    t2, r2, g2 = transfer_pairs(1, [0], [1], ["mouth"], 32)
    assert not torch.equal(t2, g2) and not torch.equal(r2, g2)
    batch = next(iter(tr.epoch_batches(0, 0)))
    tr.iteration = 7
    logs = tr.train_step(batch)
    assert logs["swap_l1"] > 0 and math.isfinite(logs["loss_g"])
    assert logs["loss_g"] == pytest.approx(logs["l1"] + logs["swap_l1"], rel=1e-5)


def test_the_encoder_skips_what_the_swap_pairs_discard(tmp_path, monkeypatch):
    """The box encoder leaves out the references' content and the embeddings no pair takes: the
    same loss and, up to float rounding, the same gradients as encoding everything."""
    torch.manual_seed(0)
    tr = tiny_trainer(tmp_path, swapping(swap_pairs=3, swap_components=["l_eye", "nose", "eyes"]))
    batch = next(iter(tr.epoch_batches(0, 0)))
    calls, forward = [], type(tr.E).forward

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(tr.E), "forward", spy)
    results = []
    for selective in (False, True):
        tr.E.selective = selective
        torch.manual_seed(1)  # the same noise draws
        tr.E.zero_grad(set_to_none=True)
        tr.G.zero_grad(set_to_none=True)
        loss, _ = tr.loss.generator_loss(batch["image"], batch["mask"], 7)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in tr.E.parameters()]))
    n = batch["image"].shape[0]
    assert calls[0] == {} and calls[1]["content_rows"] == n + 3 and calls[1]["needed"].shape == (n + 6, 4)
    assert calls[1]["needed"][:n].all() and (calls[1]["needed"][n:n + 3] ^ calls[1]["needed"][n + 3:]).all()
    (full, g_full), (sel, g_sel) = results
    assert torch.equal(full, sel)
    for a, b in zip(g_full, g_sel):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_swap_box_loss_is_the_swap_error_inside_the_swapped_box(tmp_path):
    """loss.swap_box_weight: the mean L1 over each pair's swapped box only; needs the swap pairs."""
    from model.boxes import boxes_at

    torch.manual_seed(0)
    tr = tiny_trainer(tmp_path, swapping(swap_pairs=3, swap_box_weight=2.0))
    batch = next(iter(tr.epoch_batches(0, 0)))
    tr.iteration = 5
    with torch.no_grad():
        _, swapped, truth, _ = tr.loss.swap_forward(batch["image"], batch["mask"], 5)
    take = tr.loss.swap.batch(5)[3]
    err, area = 0.0, 0
    for k in range(3):
        x0, y0, x1, y1 = boxes_at(32)[int(take[k].nonzero())]
        err += float((swapped[k, :, y0:y1, x0:x1] - truth[k, :, y0:y1, x0:x1]).abs().sum())
        area += 3 * (x1 - x0) * (y1 - y0)
    logs = tr.train_step(batch)
    assert logs["swap_box_l1"] == pytest.approx(err / area, rel=1e-4)
    assert logs["loss_g"] == pytest.approx(logs["l1"] + logs["swap_l1"] + 2.0 * logs["swap_box_l1"], rel=1e-5)
    with pytest.raises(ConfigError, match="swap_box_weight needs the swap pairs"):
        parse_config(counterfactual(swap_box_weight=1.0))

def test_swap_components_can_swap_both_eyes_at_once(tmp_path):
    """loss.swap_components: a pair drawn as ``eyes`` swaps both eye embeddings; its truth has both
    eyes from the reference, its box loss covers both eye boxes; bad selections are refused with
    the valid names."""
    from data_loader import synthfaces as sf
    from data_loader.synthfaces.dataset import render_batch
    from model.boxes import boxes_at

    torch.manual_seed(0)
    tr = tiny_trainer(tmp_path, swapping(swap_pairs=2, swap_box_weight=1.0, swap_components=["eyes"]))
    target, reference, truth, take = tr.loss.swap.batch(3)
    assert take.tolist() == [[True, True, False, False]] * 2
    rng = np.random.default_rng([int(tr.cfg.seed), 0x5A, 3])
    ids = rng.integers(0, len(tr.loss.swap.train_ids), size=(2, 2))
    faces = [sf.sample_factors(tr.loss.swap.seed, int(tr.loss.swap.train_ids[i])) for i in ids[0]]
    refs = [sf.sample_factors(tr.loss.swap.seed, int(tr.loss.swap.train_ids[i])) for i in ids[1]]
    torch.testing.assert_close(truth, render_batch([sf.transfer(f, r, "eyes") for f, r in zip(faces, refs)], 32))
    batch = next(iter(tr.epoch_batches(0, 0)))
    tr.iteration = 3
    with torch.no_grad():
        _, swapped, truth2, _ = tr.loss.swap_forward(batch["image"], batch["mask"], 3)
    boxes = torch.zeros(32, 32)
    for x0, y0, x1, y1 in boxes_at(32)[:2]:
        boxes[y0:y1, x0:x1] = 1
    expected = float(((swapped - truth2).abs() * boxes).sum() / (boxes.sum() * 3 * 2))
    assert tr.train_step(batch)["swap_box_l1"] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ConfigError, match="unknown component 'ear'.*l_eye"):
        parse_config(swapping(swap_components=["eyes", "ear"]))


def test_swap_pairs_take_the_data_sets_defaults_for_unset_args(tmp_path):
    """A SynthFaces block without ``seed`` or the split sizes trains with swaps (the data set's own
    defaults, as the data set itself reads them), not a TypeError."""
    import inspect

    from data_loader.synthfaces import SynthFacesDataset
    from data_loader.synthfaces.dataset import split_ranges
    from trainer.counterfactual import SwapPairs

    cfg = swapping()
    args = cfg["data_set"]["args"]
    for key in ("seed", "num_train", "num_val", "num_test"):
        args.pop(key, None)
    pairs = SwapPairs(parse_config(cfg))
    defaults = inspect.signature(SynthFacesDataset).parameters
    assert pairs.seed == defaults["seed"].default
    assert pairs.train_ids == split_ranges(*(defaults[k].default for k in ("num_train", "num_val", "num_test")))["train"]
    tgt, ref, truth, take = pairs.batch(0)
    assert tgt.shape == ref.shape == truth.shape and take.shape[1] == 4


def test_loader_workers_render_the_swap_pairs_and_training_is_unchanged(tmp_path):
    """With ``num_workers`` > 0 the run's loader worker renders each iteration's swap pairs ahead
    of the step (none is rendered in the training process) and keeps its render cache across
    epochs; the weights after three steps equal those of a run whose steps render the pairs."""
    def run(workers: int, folder):
        cfg = swapping(swap_pairs=2)
        cfg["data_loader"]["num_workers"] = workers
        torch.manual_seed(0)
        tr = tiny_trainer(tmp_path / folder, cfg)
        loader = tr.epoch_batches(0, 0)
        batches = iter(loader)
        rendered = []
        real = tr.loss.swap.batch
        tr.loss.swap.batch = lambda it: rendered.append(it) or real(it)  # the training process's renders
        for it in range(3):
            tr.iteration = it
            batch = next(batches)
            assert batch["iteration"] == it and len(batch["extras"]) == 4
            tr.train_step(batch)
        del batches
        assert tr.epoch_batches(1, 2) is loader and next(iter(loader))["iteration"] == tr.steps_per_epoch() + 2
        return rendered, [p.detach().clone() for p in (*tr.E.parameters(), *tr.G.parameters())]

    rendered_ahead, ahead = run(1, "workers")
    assert rendered_ahead == []
    _, inline = run(0, "inline")
    assert all(torch.equal(a, b) for a, b in zip(ahead, inline))


def test_swap_targets_and_references_come_from_the_training_sets_render_cache(tmp_path):
    """The trainer hands SwapPairs its SynthFaces training set: targets and references are read
    from that set's cache (filled by them), with the pixels a fresh render gives."""
    cfg = swapping(swap_pairs=3)
    cfg["data_set"]["args"]["cache"] = True
    tr = tiny_trainer(tmp_path, cfg)
    faces = tr.loss.swap.faces
    assert faces is not None and faces.cache and not faces._cache
    cached = tr.loss.swap.batch(4)
    assert len(faces._cache) > 0
    tr.loss.swap.faces = None
    fresh = tr.loss.swap.batch(4)
    assert all(torch.equal(a, b) for a, b in zip(cached, fresh))
