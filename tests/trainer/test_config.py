"""Training configs (trainer/config.py): the shipped configs, errors naming the key, ``"base"``
chains of config files, typed loss blocks and the loss registry (trainer/registry.py)."""
import json

import pytest

from model.config import ConfigError
from model.convert import official_keys
from tests.helpers import ROOT, TINY_CONFIG, one_error_line, run_train, tiny_config, write_config
from trainer.config import load_config, parse_config, read_config_data

SHIPPED = sorted((ROOT / "configs").rglob("*.json"))


def with_loss(loss, **blocks) -> dict:
    """The tiny config with its loss block replaced by ``loss`` (and ``blocks`` laid over it)."""
    cfg = tiny_config(**blocks)
    cfg["loss"] = loss
    return cfg


# --------------------------------------------------------------------------------- shipped configs
@pytest.mark.parametrize("name", ["iafaces-celebahq-256", "iafaces_cam-celebahq-256", "iafaces-ffhq-1024",
                                  "iafaces_cam-ffhq-1024"])
def test_official_configs_build_official_models(name, official_layout):
    from model import build_networks

    cfg = load_config(ROOT / "configs" / f"{name}.json")
    assert cfg.trainer.lr_schedulers == "ignore" and cfg.optimizer_G.lr == 0.002
    assert cfg.loss.d_reg_every == 16 and cfg.loss.r1 == 10 and cfg.data_loader.batch_size == 4
    assert type(cfg.loss).__name__ == "LossConfig" and cfg.model_config().is_release
    E, G, D = build_networks(cfg.model_config())
    layout = official_layout[name]
    for net, part in ((E, "e_ema"), (G, "g_ema"), (D, "d")):
        assert official_keys(net) == [(e["key"], tuple(e["shape"])) for e in layout[part]]


def test_default_config_is_valid():
    cfg = load_config(ROOT / "configs" / "synthfaces.json")
    assert cfg.data_set.type == "SynthFaces" and cfg.loss.p_loss_weight == 0
    assert (cfg.encoder.type, cfg.generator.type, type(cfg.loss).__name__) == ("BoxEncoder", "PaintingGenerator",
                                                                              "CounterfactualLossConfig")
    assert cfg.notes == []  # written in the current form: nothing upgraded


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_config_is_valid(path):
    cfg = load_config(path)
    cfg.model_config()
    assert cfg.notes == [], cfg.notes  # no shipped config relies on the legacy mapping


def test_study_configs_inherit_from_a_shipped_config():
    study = [p for p in SHIPPED if p.parent.name == "study"]
    assert len(study) >= 10
    for path in study:
        data = json.loads(path.read_text())
        assert isinstance(data.get("base"), str), path.name
        parent = (path.parent / data["base"]).resolve()
        assert parent in [p.resolve() for p in SHIPPED], path.name
        assert "base" not in read_config_data(path)


def test_config_errors_list_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'epoch'.*valid keys:.*epochs"):
        parse_config({**TINY_CONFIG, "trainer": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'foo'.*valid keys:.*seed"):
        parse_config({**TINY_CONFIG, "foo": 1})
    with pytest.raises(ConfigError, match="batch_size.*must be int"):
        parse_config({**TINY_CONFIG, "data_loader": {"batch_size": "4"}})
    with pytest.raises(ConfigError, match="missing required"):
        parse_config({k: v for k, v in TINY_CONFIG.items() if k != "model_arch"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)


DEEP = json.dumps({"x": 1})[:-1] + ', "deep": ' + "[" * 100000 + "]" * 100000 + "}"


@pytest.mark.parametrize("blocks,words", [
    ({"data_set": {"args": {"num_train": -5}}}, ["data_set.args.num_train", ">= 0"]),
    ({"trainer": {"log_period": 0}}, ["trainer.log_period", ">= 1"]),
    ({"data_loader": {"num_workers": -1}}, ["data_loader.num_workers", ">= 0"]),
    ({"optimizer_G": {"lr": float("nan")}}, ["optimizer_G.lr", "> 0"]),
    ({"data_set": {"args": {"size": 64}}}, ["data_set.args.size", "64", "32"]),
    ({"trainer": {"monitor": "min fid"}}, ["trainer.monitor", "fid", "avg_mse"]),
    ({"loss": {"args": {"r1": -1}}}, ["loss.r1", ">= 0"]),
    ("deep", ["nests deeper"]),
])
def test_bad_config_value_is_one_line_naming_key_and_range(tmp_path, capsys, blocks, words):
    """Hostile inputs (issue 15): a bad value is one ``error:`` line from train.py."""
    path = tmp_path / "bad.json"
    if blocks == "deep":
        path.write_text(DEEP)
    else:
        write_config(path, tiny_config(**blocks))
    assert run_train(["-c", str(path), "--iters", "1", "--device", "cpu", "--save_dir", str(tmp_path / "s")],
                     tmp_path) == 2
    one_error_line(capsys, *words)


# ------------------------------------------------------------------------------------------- base
def test_base_config_chain_is_resolved_on_load(tmp_path):
    """A study-style config: ``base`` names its parent (relative to the file); keys override,
    objects merge, null removes a key (the field takes its default), a block with another type
    replaces the parent's block."""
    parent = tiny_config(editing={"boundary_recipe": "mean"},
                         encoder={"type": "BoxEncoder", "args": {**TINY_CONFIG["encoder"]["args"], "crop_size": 8,
                                                                 "ring_fit": "plane"}})
    write_config(tmp_path / "base" / "parent.json", parent)
    child = {"base": "../base/parent.json", "exp_id": "child",
             "encoder": {"args": {"ring_fit": None, "crop_channels": 8}},
             "loss": {"type": "CounterfactualLoss", "args": {"g_loss_weight": 0, "p_loss_weight": 0,
                                                             "box_l1_weight": 2}},
             "trainer": {"epochs": 3}, "editing": None}
    path = write_config(tmp_path / "study" / "child.json", child)
    data = read_config_data(path)
    assert "base" not in data and data["exp_id"] == "child" and "editing" not in data
    assert data["encoder"] == {"type": "BoxEncoder", "args": {**TINY_CONFIG["encoder"]["args"], "crop_size": 8,
                                                              "crop_channels": 8}}
    assert data["loss"] == child["loss"]  # another type: the parent's args (d_reg_every, r1) are gone
    assert data["trainer"] == {**TINY_CONFIG["trainer"], "epochs": 3}
    cfg = load_config(path)
    assert cfg.exp_id == "child" and cfg.trainer.epochs == 3 and cfg.editing.boundary_recipe == "release"
    enc = cfg.model_config().encoder
    assert (enc.crop_size, enc.crop_channels, enc.ring_fit) == (8, 8, "mean")
    assert type(cfg.loss).__name__ == "CounterfactualLossConfig" and cfg.loss.box_l1_weight == 2
    # Every study config is its parent plus what it says.
    study = ROOT / "configs" / "study" / "crops_paint.json"
    raw, resolved = json.loads(study.read_text()), read_config_data(study)
    assert resolved["encoder"]["type"] == "BoxEncoder" and resolved["encoder"]["args"]["ring_fit"] == "mean"
    assert "swap_weight" not in resolved["loss"]["args"] and "editing" not in resolved
    assert resolved["exp_id"] == raw["exp_id"] != read_config_data(ROOT / "configs" / "synthfaces.json")["exp_id"]


def test_base_cycle_and_missing_parent_are_one_line(tmp_path, capsys):
    write_config(tmp_path / "a.json", {"base": "b.json", "exp_id": "a"})
    write_config(tmp_path / "b.json", {"base": "a.json"})
    with pytest.raises(ConfigError, match="its own ancestor"):
        load_config(tmp_path / "a.json")
    write_config(tmp_path / "orphan.json", {"base": "../nowhere/parent.json", **TINY_CONFIG})
    with pytest.raises(ConfigError, match=r"parent config not found: .*nowhere/parent\.json"):
        load_config(tmp_path / "orphan.json")
    for name, words in (("a.json", ["its own ancestor"]), ("orphan.json", ["parent config not found"])):
        assert run_train(["-c", str(tmp_path / name), "--iters", "1", "--device", "cpu"], tmp_path) == 2
        one_error_line(capsys, *words)


def test_the_runs_config_json_is_the_resolved_config(tmp_path):
    """The run's log folder holds ``config.json``: ``cfg.to_dict()`` of the resolved config (no
    ``base``, every block filled in), which reads back to the same config."""
    write_config(tmp_path / "parent.json", tiny_config(trainer={"epochs": 2}))
    path = write_config(tmp_path / "child.json", {"base": "parent.json", "exp_id": "child", "seed": 9})
    assert run_train(["-c", str(path), "--iters", "1", "--device", "cpu", "--save_dir", "s", "--run_id", "r"],
                     tmp_path) == 0
    written = json.loads((tmp_path / "s/log/child/r/config.json").read_text())
    cfg = load_config(path)
    cfg.trainer.iters, cfg.trainer.save_dir = 1, "s"  # as train.py sets them from the command line
    assert "base" not in written and written == json.loads(json.dumps(cfg.to_dict()))
    assert written["seed"] == 9 and written["trainer"]["epochs"] == 2 and written["loss"]["type"] == "IAFacesLoss"
    assert parse_config(written).to_dict() == cfg.to_dict()  # the written config reads back as it is


# ------------------------------------------------------------------------------------------ losses
def test_loss_registry_picks_the_class_the_type_names():
    from trainer.counterfactual import CounterfactualLoss, CounterfactualLossConfig
    from trainer.losses import IAFacesLoss, LossConfig
    from trainer.registry import LOSSES, loss_class, loss_type

    assert list(LOSSES) == ["IAFacesLoss", "CounterfactualLoss"]
    assert loss_class("IAFacesLoss") is IAFacesLoss and loss_class("CounterfactualLoss") is CounterfactualLoss
    assert loss_type(LossConfig()) == "IAFacesLoss" and loss_type(CounterfactualLossConfig()) == "CounterfactualLoss"
    with pytest.raises(ConfigError, match=r"^loss.type 'Nope' unknown; valid: IAFacesLoss, CounterfactualLoss$"):
        loss_class("Nope")
    with pytest.raises(ConfigError, match=r"loss.type 'Nope' unknown; valid: IAFacesLoss, CounterfactualLoss"):
        parse_config(with_loss({"type": "Nope", "args": {}}))
    cfg = parse_config(with_loss({"type": "CounterfactualLoss", "args": {"p_loss_weight": 0, "box_l1_weight": 1}}))
    assert type(cfg.loss) is CounterfactualLossConfig and cfg.to_dict()["loss"]["type"] == "CounterfactualLoss"
    assert type(parse_config(tiny_config()).loss) is LossConfig
    # The release's loss has none of the study's keys.
    with pytest.raises(ConfigError, match=r"unknown key 'swap_weight' in loss; valid keys: g_loss_weight"):
        parse_config(with_loss({"type": "IAFacesLoss", "args": {"swap_weight": 1}}))
    with pytest.raises(ConfigError, match=r"unknown key 'weights' in loss; valid keys: type, args"):
        parse_config(with_loss({"type": "IAFacesLoss", "weights": {}}))


def test_flat_loss_blocks_are_still_read():
    """The release's configs write the loss flat: its keys read as the release's loss; flat keys of
    the counterfactual loss select it, and the config's notes say so."""
    from trainer.counterfactual import CounterfactualLossConfig
    from trainer.losses import LossConfig

    release = parse_config(with_loss({"g_loss_weight": 1, "p_loss_weight": 0, "d_loss_weight": 1, "r1": 10,
                                      "d_reg_every": 16, "l1_loss_weight": 1}))
    assert type(release.loss) is LossConfig and release.notes == []
    study = parse_config(with_loss({"p_loss_weight": 0, "g_loss_weight": 0, "box_l1_weight": 2}))
    assert type(study.loss) is CounterfactualLossConfig and study.loss.box_l1_weight == 2
    assert study.notes == ['the flat loss block with box_l1_weight is read as "type": "CounterfactualLoss"']


C = "CounterfactualLoss"
#: (loss block, the key the error names)
INERT_LOSS = {
    "d_loss_weight without the adversarial term": ({"type": "IAFacesLoss", "args": {"g_loss_weight": 0,
                                                                                    "p_loss_weight": 0,
                                                                                    "d_loss_weight": 2}},
                                                   "d_loss_weight"),
    "r1 without the adversarial term": ({"type": "IAFacesLoss", "args": {"g_loss_weight": 0, "p_loss_weight": 0,
                                                                         "r1": 1}}, "r1"),
    "d_reg_every without the adversarial term": ({"type": C, "args": {"g_loss_weight": 0, "p_loss_weight": 0,
                                                                      "d_reg_every": 4}}, "d_reg_every"),
    "gan_start without the adversarial term": ({"type": C, "args": {"g_loss_weight": 0, "p_loss_weight": 0,
                                                                    "gan_start": 100}}, "gan_start"),
    "swap_pairs without the swap loss": ({"type": C, "args": {"p_loss_weight": 0, "swap_pairs": 4}}, "swap_pairs"),
    "swap_components without the swap loss": ({"type": C, "args": {"p_loss_weight": 0, "swap_weight": 0,
                                                                   "swap_components": ["eyes"]}},
                                              "swap_components"),
    "lpips_backbone without LPIPS": ({"type": "IAFacesLoss", "args": {"p_loss_weight": 0,
                                                                      "lpips_backbone": "random"}}, "lpips_backbone"),
    "lpips_vgg_weights without LPIPS": ({"type": C, "args": {"p_loss_weight": 0, "lpips_vgg_weights": "vgg.pth"}},
                                        "lpips_vgg_weights"),
}


@pytest.mark.parametrize("case", list(INERT_LOSS))
def test_inert_loss_argument_is_one_line_naming_it(case):
    loss, key = INERT_LOSS[case]
    with pytest.raises(ConfigError) as e:
        parse_config(with_loss(loss))
    message = str(e.value)
    assert f"loss.{key} has no effect for {loss['type']}" in message and "\n" not in message, message
    # Where the key acts, the same block is accepted.
    acting = {**loss["args"], "g_loss_weight": 0.1, "p_loss_weight": 1, "swap_weight": 1} if loss["type"] == C else \
        {**loss["args"], "g_loss_weight": 0.1, "p_loss_weight": 1}
    assert parse_config(with_loss({"type": loss["type"], "args": acting}))


@pytest.mark.parametrize("key,block", [("optimizer_D", {"lr": 0.001}),
                                       ("lr_scheduler_D", {"type": "ExponentialLR", "args": {"gamma": 0.99}})])
def test_discriminator_blocks_without_the_adversarial_term_are_refused(key, block):
    loss = {"type": "IAFacesLoss", "args": {"g_loss_weight": 0, "p_loss_weight": 0}}
    with pytest.raises(ConfigError, match=rf"{key} has no effect: the loss has no adversarial term"):
        parse_config(with_loss(loss, **{key: block}))
    assert parse_config(with_loss(loss))  # without it: fine
    # With the adversarial term, or in the release's flat form, the block is read.
    assert parse_config(with_loss({"type": "IAFacesLoss", "args": {"p_loss_weight": 0}}, **{key: block}))
    assert parse_config(with_loss({"g_loss_weight": 0, "p_loss_weight": 0}, **{key: block}))


def test_swap_box_weight_needs_the_swap_pairs_and_swap_weight_needs_synthfaces(tmp_path):
    with pytest.raises(ConfigError, match="swap_box_weight needs the swap pairs"):
        parse_config(with_loss({"type": C, "args": {"p_loss_weight": 0, "swap_box_weight": 1.0}}))
    with pytest.raises(ConfigError, match="swap_box_weight needs the swap pairs"):
        parse_config(with_loss({"p_loss_weight": 0, "swap_box_weight": 1.0}))  # flat, too
    with pytest.raises(ConfigError, match="unknown component 'ear'.*l_eye"):
        parse_config(with_loss({"type": C, "args": {"p_loss_weight": 0, "swap_weight": 1,
                                                    "swap_components": ["eyes", "ear"]}}))
    folder = {"type": "ImageFolderDataset", "args": {"image_dir": str(tmp_path), "image_size": 32}}
    with pytest.raises(ConfigError, match="swap_weight needs the SynthFaces"):
        parse_config(with_loss({"type": C, "args": {"p_loss_weight": 0, "swap_weight": 1.0}}, data_set=folder))
