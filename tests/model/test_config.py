"""Model configuration (model/config.py), the network registry (model/registry.py) and the one
place where the form used before the variants had classes of their own is upgraded
(model/variants/legacy.py): unknown keys, inert or contradictory options and unknown types are
one-line ConfigErrors naming the key."""
import dataclasses
import json

import pytest
import torch

from model import build_model_config, build_networks
from model.config import ARCHITECTURES, ConfigError, EncoderConfig, GeneratorConfig, ModelConfig, is_official_arch
from model.networks import Discriminator, Encoder, Generator
from model.registry import REGISTRY, build_network, config_class, lookup
from model.variants import (BoxEncoder, BoxEncoderConfig, OneCodeEncoder, OneCodeEncoderConfig, PaintingGenerator,
                            PaintingGeneratorConfig)
from tests.helpers import ROOT, SIZE, TINY_ENCODER, tiny_model_config

BOX = {"encoder": "BoxEncoder"}
PAINT = {"generator": "PaintingGenerator"}


# --------------------------------------------------------------------------------------- basics
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


def test_model_config_of_the_variants_roundtrips_with_its_types():
    """``to_dict`` is ``{"arch", "encoder": {"type", "args"}, ...}`` and ``from_dict`` rebuilds the
    same classes' configs."""
    cfg = tiny_model_config("iafaces_cam", types={**BOX, **PAINT}, encoder={"crop_size": 8, "ring_fit": "plane"},
                            generator={"component_paint": 16})
    d = json.loads(json.dumps(cfg.to_dict()))
    assert list(d) == ["arch", "encoder", "generator", "discriminator"]
    assert {p: d[p]["type"] for p in ("encoder", "generator", "discriminator")} == {
        "encoder": "BoxEncoder", "generator": "PaintingGenerator", "discriminator": "Discriminator"}
    assert d["encoder"]["args"]["crop_size"] == 8 and d["generator"]["args"]["component_paint"] == 16
    again = ModelConfig.from_dict(d)
    assert again == cfg and type(again.encoder) is BoxEncoderConfig and type(again.generator) is PaintingGeneratorConfig
    assert not again.is_release and tiny_model_config().is_release
    with pytest.raises(ConfigError, match=r"unknown key 'kind' in model config encoder"):
        ModelConfig.from_dict({**d, "encoder": {**d["encoder"], "kind": "x"}})


def test_architectures_are_official_or_scalable_with_a_default_encoder():
    assert {a: (official, enc) for a, (_, official, enc) in ARCHITECTURES.items()} == {
        "iafaces_256": (True, "Encoder"), "iafaces_cam_256": (True, "Encoder"), "iafaces_1024": (True, "Encoder"),
        "iafaces_cam_1024": (True, "Encoder"), "iafaces": (False, "Encoder"), "iafaces_cam": (False, "Encoder"),
        "one_code": (False, "OneCodeEncoder")}
    assert is_official_arch("iafaces_cam_256") and not is_official_arch("iafaces") and not is_official_arch("nope")
    assert tiny_model_config("one_code").types["encoder"] == "OneCodeEncoder"
    with pytest.raises(ConfigError, match=r"encoder.type must be 'Encoder' for the official architecture iafaces_256"):
        build_model_config("iafaces_256", types=BOX)


# -------------------------------------------------------------------------------------- registry
def test_registry_builds_the_class_each_type_names():
    assert {n: list(t) for n, t in REGISTRY.items()} == {
        "encoder": ["Encoder", "BoxEncoder", "OneCodeEncoder"], "generator": ["Generator", "PaintingGenerator"],
        "discriminator": ["Discriminator"]}
    expected = {("encoder", "Encoder"): (Encoder, EncoderConfig),
                ("encoder", "BoxEncoder"): (BoxEncoder, BoxEncoderConfig),
                ("encoder", "OneCodeEncoder"): (OneCodeEncoder, OneCodeEncoderConfig),
                ("generator", "Generator"): (Generator, GeneratorConfig),
                ("generator", "PaintingGenerator"): (PaintingGenerator, PaintingGeneratorConfig)}
    for (network, name), (cls, cfg_cls) in expected.items():
        assert lookup(network, name) == (cls, cfg_cls) and config_class(network, name) is cfg_cls
    for types, classes in (({}, (Encoder, Generator)), ({**BOX, **PAINT}, (BoxEncoder, PaintingGenerator)),
                           ({"encoder": "OneCodeEncoder"}, (OneCodeEncoder, Generator))):
        cfg = tiny_model_config("iafaces_cam", types=types)
        E, G, D = build_networks(cfg)
        assert (type(E), type(G), type(D)) == (*classes, Discriminator), types
        assert type(build_network("encoder", cfg.types["encoder"], cfg.encoder)) is classes[0]


@pytest.mark.parametrize("network,valid", [("encoder", "Encoder, BoxEncoder, OneCodeEncoder"),
                                           ("generator", "Generator, PaintingGenerator"),
                                           ("discriminator", "Discriminator")])
def test_unknown_network_type_is_refused_with_the_valid_list(network, valid):
    with pytest.raises(ConfigError, match=rf"{network}.type 'Nope' unknown; valid: {valid}$"):
        tiny_model_config(types={network: "Nope"})
    with pytest.raises(ConfigError, match=rf"{network}.type 'Nope' unknown; valid: {valid}$"):
        lookup(network, "Nope")
    with pytest.raises(ConfigError, match=r"unknown key 'mapping' in network types"):
        tiny_model_config(types={"mapping": "Encoder"})


def test_a_config_of_another_class_is_refused():
    cfg = tiny_model_config()
    with pytest.raises(ConfigError, match="encoder type 'BoxEncoder' takes BoxEncoderConfig, got EncoderConfig"):
        ModelConfig(arch="iafaces", encoder=cfg.encoder, generator=cfg.generator, discriminator=cfg.discriminator,
                    types=BOX)


# ------------------------------------------------------------------ inert and contradictory options
#: (arch, types, encoder args, generator args, the key the error names)
INERT = {
    "crop_size with features": ("iafaces", BOX, {"content_input": "fill_components", "component_input": "features",
                                                 "crop_size": 8}, {}, "crop_size"),
    "crop_channels with features": ("iafaces", BOX, {"content_input": "fill_components",
                                                     "component_input": "features", "crop_channels": 8}, {},
                                    "crop_channels"),
    "crop_exclusive with features": ("iafaces", BOX, {"content_input": "fill_components",
                                                      "component_input": "features", "crop_exclusive": True}, {},
                                     "crop_exclusive"),
    "ring_fit without a ring": ("iafaces", BOX, {"content_input": "outside_components", "component_input": "features",
                                                 "ring_fit": "plane"}, {}, "ring_fit"),
    "ring_exclusive without a ring": ("iafaces", BOX, {"content_input": "outside_components",
                                                       "component_input": "features", "ring_exclusive": True}, {},
                                      "ring_exclusive"),
    "component_channels with crops": ("iafaces", BOX, {"component_channels": 8}, {}, "component_channels"),
    "the release's encoder as a BoxEncoder": ("iafaces", BOX, {"content_input": "image",
                                                               "component_input": "features"}, {}, "content_input"),
    "cam_modulated without cam": ("iafaces", None, {}, {"cam_modulated": False}, "cam_modulated"),
    "cam_placement without cam": ("iafaces", None, {}, {"cam_placement": "official"}, "cam_placement"),
    "cam_modulated with cam false": ("iafaces_cam", None, {}, {"cam": False, "cam_modulated": False},
                                     "cam_modulated"),
    "component_paint off the synthesis grid": ("iafaces_cam", PAINT, {}, {"component_paint": 24}, "component_paint"),
    "component_paint 0": ("iafaces_cam", PAINT, {}, {"component_paint": 0}, "component_paint"),
    "box options on OneCodeEncoder": ("iafaces", {"encoder": "OneCodeEncoder"}, {"crop_size": 8}, {}, "crop_size"),
    "box options on the one_code arch": ("one_code", None, {"content_input": "fill_components"}, {},
                                         "content_input"),
    "component_channels on the one_code arch": ("one_code", None, {"component_channels": 8}, {},
                                                "component_channels"),
}


@pytest.mark.parametrize("case", list(INERT))
def test_inert_or_contradictory_network_option_is_one_line_naming_it(case):
    arch, types, encoder, generator, key = INERT[case]
    with pytest.raises(ConfigError) as e:
        tiny_model_config(arch, types=types, encoder=encoder, generator=generator)
    message = str(e.value)
    assert key in message and "\n" not in message, message


def test_the_same_options_where_they_act_are_accepted():
    """The counterparts of the cases above, where each option has an effect."""
    enc = tiny_model_config(types=BOX, encoder={"content_input": "fill_components", "component_input": "features",
                                                "ring_fit": "plane", "ring_exclusive": True}).encoder
    assert (enc.component_input, enc.ring_fit, enc.ring_exclusive) == ("features", "plane", True)
    enc = tiny_model_config(types=BOX, encoder={"content_input": "image", "component_input": "crops",
                                                "crop_size": 8, "crop_exclusive": True}).encoder
    assert (enc.content_input, enc.crop_size, enc.crop_exclusive) == ("image", 8, True)
    enc = tiny_model_config(types=BOX, encoder={"content_input": "outside_components", "component_input": "features",
                                                "component_channels": 8}).encoder
    assert enc.component_channels == 8 and not enc.uses_rings
    gen = tiny_model_config("iafaces_cam", generator={"cam_modulated": False, "cam_placement": "official"}).generator
    assert (gen.cam, gen.cam_modulated, gen.cam_placement) == (True, False, "official")
    for res in (4, 8, 16, 32):  # the content size and every synthesis resolution
        gen = tiny_model_config("iafaces_cam", types=PAINT, generator={"component_paint": res}).generator
        assert gen.component_paint == res
    # The box encoder's defaults: boxes filled with their ring colour, embeddings from crops.
    enc = tiny_model_config(types=BOX).encoder
    assert (enc.content_input, enc.component_input) == ("fill_components", "crops")


def test_bad_study_option_values_are_refused():
    with pytest.raises(ConfigError, match="content_input"):
        tiny_model_config(types=BOX, encoder={"content_input": "everything"})
    with pytest.raises(ConfigError, match="component_input"):
        tiny_model_config(types=BOX, encoder={"component_input": "pixels"})
    with pytest.raises(ConfigError, match="crop_size"):
        tiny_model_config(types=BOX, encoder={"crop_size": 12})
    with pytest.raises(ConfigError, match="ring_fit"):
        tiny_model_config(types=BOX, encoder={"ring_fit": "median"})
    # Study options are no fields of the release's classes (named under them, they are read in the old
    # form: see the legacy test below).
    assert not {"component_paint"} & {f.name for f in dataclasses.fields(GeneratorConfig)}
    assert not {"content_input", "crop_size", "ring_fit"} & {f.name for f in dataclasses.fields(EncoderConfig)}


# ------------------------------------------------------------------------------------- old forms
#: A model_config as checkpoints written before the variants had classes stored it: flat field
#: dicts, study options among the release encoder's and generator's fields (SynthFaces default, 64 px).
OLD_FLAT_MODEL_CONFIG = {
    "arch": "iafaces_cam",
    "encoder": {"size": 64, "channel": 16, "channel_max": 256, "feat_size": 32, "content_channels": 64, "comp_dim": 128,
                "component_channels": None, "content_input": "fill_components", "component_input": "crops",
                "crop_size": 16, "crop_channels": 32, "ring_fit": "plane", "crop_exclusive": True,
                "ring_exclusive": True},
    "generator": {"size": 64, "content_size": 16, "content_channels": 64, "comp_dim": 128, "n_components": 4,
                  "channel_base": 2048, "channel_max": 256, "channel_shift": 0, "cam": True, "cam_modulated": False,
                  "cam_placement": "aligned", "train_noise": "random", "component_paint": 32},
    "discriminator": {"size": 64, "channel_base": 512, "channel_max": 128},
}


def _shapes(module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_configs_and_checkpoints_of_the_old_form_load_into_the_variants(tmp_path):
    """The legacy mapping: an old training config (study options under ``"type": "Encoder"`` /
    ``"Generator"``, a flat loss with the study's keys: configs/synthfaces.json before the
    variants had classes) and an old flat checkpoint ``model_config`` both load into BoxEncoder /
    PaintingGenerator (and the counterfactual loss), with the weights' shapes of today's config;
    an old checkpoint's weights load as they are. The one_code architecture's old encoder entry
    becomes OneCodeEncoder without the box options it never read."""
    from model.checkpoint import atomic_save, load_models, save_model_checkpoint
    from trainer.config import load_config, parse_config

    new = load_config(ROOT / "configs" / "synthfaces.json")
    old = parse_config(json.loads((ROOT / "tests" / "data" / "synthfaces_before_variant_types.json").read_text()))
    assert (old.encoder.type, old.generator.type, old.discriminator.type) == ("BoxEncoder", "PaintingGenerator",
                                                                             "Discriminator")
    assert any("now BoxEncoder" in n for n in old.notes) and any("now PaintingGenerator" in n for n in old.notes)
    assert any('"type": "CounterfactualLoss"' in n for n in old.notes)
    assert type(old.loss) is type(new.loss) and old.loss.swap_components == new.loss.swap_components
    assert old.model_config() == new.model_config()
    flat = ModelConfig.from_dict(json.loads(json.dumps(OLD_FLAT_MODEL_CONFIG)))
    assert flat == new.model_config() and flat.types == {"encoder": "BoxEncoder", "generator": "PaintingGenerator",
                                                         "discriminator": "Discriminator"}
    with torch.device("meta"):
        ref = build_networks(new.model_config())
        for cfg in (old.model_config(), flat):
            nets = build_networks(cfg)
            assert [type(n) for n in nets] == [BoxEncoder, PaintingGenerator, Discriminator]
            assert [_shapes(n) for n in nets] == [_shapes(n) for n in ref]

    # An old checkpoint of a tiny model: the flat model_config, weights as the old classes named them.
    tiny = tiny_model_config("iafaces_cam", types={**BOX, **PAINT},
                             encoder={"crop_size": 8, "crop_channels": 8, "ring_fit": "plane", "crop_exclusive": True},
                             generator={"component_paint": 16})
    torch.manual_seed(0)
    E, G, _ = build_networks(tiny, discriminator=False)
    save_model_checkpoint(tmp_path / "old.pth", E, G, tiny)
    payload = torch.load(tmp_path / "old.pth", weights_only=True)
    d = tiny.to_dict()
    payload["model_config"] = {"arch": "iafaces_cam", "encoder": {**d["encoder"]["args"]},
                               "generator": {**d["generator"]["args"]}, "discriminator": d["discriminator"]["args"]}
    old_form = payload["model_config"]
    assert "type" not in old_form["encoder"] and "component_paint" in old_form["generator"]
    atomic_save(payload, tmp_path / "old.pth")
    models = load_models(tmp_path / "old.pth", device="cpu")
    assert type(models.encoder) is BoxEncoder and type(models.generator) is PaintingGenerator
    assert models.model_config == tiny
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(models.generator(*models.encoder(x)), G(*E(x)))

    # The old release-behaviour entries (image + features, no painting) are dropped, not upgraded.
    plain = {"arch": "iafaces", "encoder": {**TINY_ENCODER, "component_channels": None, "content_input": "image",
                                            "component_input": "features", "crop_size": 16, "crop_channels": 32,
                                            "ring_fit": "mean", "crop_exclusive": False, "ring_exclusive": False},
             "generator": {**dataclasses.asdict(tiny_model_config().generator), "component_paint": 0},
             "discriminator": dataclasses.asdict(tiny_model_config().discriminator)}
    assert ModelConfig.from_dict(plain) == tiny_model_config()
    one_code = {**plain, "arch": "one_code"}
    upgraded = ModelConfig.from_dict(one_code)
    assert upgraded.types["encoder"] == "OneCodeEncoder" and upgraded == tiny_model_config("one_code")
    # ... and network arguments under the release's class names (no types given, or named explicitly).
    assert tiny_model_config(encoder={"content_input": "image", "component_input": "features"}) == tiny_model_config()
    upgraded = tiny_model_config("iafaces_cam", types={"generator": "Generator"},
                                 encoder={"component_input": "crops", "crop_size": 8},
                                 generator={"component_paint": 16})
    assert upgraded == tiny_model_config("iafaces_cam", types={**BOX, **PAINT},
                                         encoder={"content_input": "image", "component_input": "crops",
                                                  "crop_size": 8}, generator={"component_paint": 16})
