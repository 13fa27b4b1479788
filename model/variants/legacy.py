"""The one place where configs in an older or foreign form are recognised and network arguments
upgraded: study options given under ``Encoder`` / ``Generator`` (training configs and the flat
``model_config`` of older checkpoints) become ``BoxEncoder`` / ``PaintingGenerator``, the
``one_code`` architecture's encoder becomes ``OneCodeEncoder`` (dropping the options it never
read), and :func:`is_release_config` tells a training config in the release's own form (its JSON
files, its checkpoints' configs) from one in the project's form."""
from __future__ import annotations

from typing import Any, Mapping

from .box_encoder import BoxEncoderConfig
from .one_code import OneCodeEncoderConfig

#: Encoder options of the box encoder, and their values in the old flat form when absent.
BOX_OPTIONS = {"content_input": "image", "component_input": "features", "crop_size": 16, "crop_channels": 32,
               "ring_fit": "mean", "crop_exclusive": False, "ring_exclusive": False}
ONE_CODE_FIELDS = {f for f in OneCodeEncoderConfig.__dataclass_fields__}

# The release's training configs: its four JSON files, plus the launcher entries its training
# script adds to the config its checkpoints store.
RELEASE_TOP_KEYS = ("seed", "exp_id", "data_name", "model_arch", "encoder", "generator", "discriminator", "data_set",
                    "data_loader", "loss", "optimizer_G", "optimizer_D", "lr_scheduler_G", "lr_scheduler_D", "trainer")
RELEASE_LAUNCHER_KEYS = ("world_size", "distributed", "local_rank", "global_rank", "init_method")
#: Plain blocks -> their keys (the loss is flat: no ``type``).
RELEASE_BLOCK_KEYS = {
    "data_loader": ("batch_size", "shuffle", "num_workers", "num_samples", "num_val_samples"),
    "loss": ("g_loss_weight", "p_loss_weight", "d_loss_weight", "l1_loss_weight", "d_reg_every", "r1"),
    "optimizer_G": ("lr",),
    "optimizer_D": ("lr",),
    "trainer": ("epochs", "update_ckpt", "save_dir", "save_period", "val_period", "log_period", "vis_img_num",
                "verbosity", "tensorboard", "monitor"),
}
#: ``{"type", "args"}`` blocks -> (the release's one type, its arguments). The release has one data
#: set class, ``CelebAHQDataset``, in a loader module per data set (picked by ``data_name``).
RELEASE_SPECS = {
    "encoder": ("Encoder", ("channel", "img_size", "feats_dim")),
    "generator": ("Generator", ("img_size", "style_dim")),
    "discriminator": ("Discriminator", ("size", "channel_multiplier")),
    "data_set": ("CelebAHQDataset", ("data_dir", "image_dir", "image_size", "num_samples")),
    "lr_scheduler_G": ("ExponentialLR", ("gamma",)),
    "lr_scheduler_D": ("ExponentialLR", ("gamma",)),
}
RELEASE_REQUIRED = ("encoder", "generator", "discriminator", "data_set")
#: ``data_name`` -> the release's loader module of that data set.
RELEASE_DATA_NAMES = ("celebahq", "ffhq")


def _keys_within(block: Any, keys) -> bool:
    return isinstance(block, Mapping) and all(k in keys for k in block)


def is_release_config(data: Any) -> bool:
    """True when ``data`` (a training config dict) is in the release's own form: an official
    ``model_arch``, a ``data_name`` the release has a loader for (celebahq, ffhq), the release's
    network classes and data set class, and no key the release's configs lack, at the top level
    (its checkpoints' launcher entries allowed), in any block or in any block's ``args``. A config
    in the project's form always names something the release does not: a project key (e.g.
    ``description``, ``trainer.lr_schedulers``, ``data_set.args.train_overlap``), a project data
    set (``FFHQDataset``, ``SynthFaces``) or class, or a typed loss block."""
    from ..config import is_official_arch

    if not _keys_within(data, RELEASE_TOP_KEYS + RELEASE_LAUNCHER_KEYS):
        return False
    arch, name = data.get("model_arch"), data.get("data_name")
    if not (isinstance(arch, str) and is_official_arch(arch) and name in RELEASE_DATA_NAMES):
        return False
    for key, (kind, args) in RELEASE_SPECS.items():
        block = data.get(key)
        if block is None:
            if key in RELEASE_REQUIRED:
                return False
            continue
        if not _keys_within(block, ("type", "args")) or block.get("type") != kind \
                or not _keys_within(block.get("args", {}), args):
            return False
    return all(data.get(key) is None or _keys_within(data[key], keys) for key, keys in RELEASE_BLOCK_KEYS.items())


def upgrade_network_args(arch: str, types: dict, given: dict) -> tuple[dict, dict, list[str]]:
    """(types, args per network, notes): ``given`` (network -> argument dict) in the old form,
    under the release's class names, rewritten for the variants' classes; anything else is
    returned unchanged. The notes say what was mapped or dropped."""
    types, given, notes = dict(types), {k: dict(v) for k, v in given.items()}, []
    enc, gen = given.get("encoder", {}), given.get("generator", {})
    if arch == "one_code" and types.get("encoder") == "Encoder":
        types["encoder"] = "OneCodeEncoder"
        notes.append("encoder.type Encoder of the one_code architecture is now OneCodeEncoder")
        dropped = sorted(k for k in enc if k in BOX_OPTIONS or k == "component_channels" and enc[k] is None)
        for k in dropped:
            del enc[k]
        if dropped:
            notes.append(f"dropped encoder options the one-code encoder never read: {', '.join(dropped)}")
    elif types.get("encoder") == "Encoder" and any(k in enc for k in BOX_OPTIONS):
        opts = {k: enc.pop(k, default) for k, default in BOX_OPTIONS.items()}
        if opts["content_input"] == "image" and opts["component_input"] == "features":
            notes.append(f"dropped encoder options left at the release's behaviour: {', '.join(sorted(opts))}")
        else:
            types["encoder"] = "BoxEncoder"
            keep = dict(opts)
            probe = BoxEncoderConfig(**{k: v for k, v in opts.items()})
            for k in probe.inert_keys():
                keep.pop(k, None)
            enc.update(keep)
            notes.append("encoder.type Encoder with box options is now BoxEncoder")
    if types.get("generator") == "Generator" and "component_paint" in gen:
        paint = gen.pop("component_paint")
        if paint:
            types["generator"] = "PaintingGenerator"
            gen["component_paint"] = paint
            notes.append("generator.type Generator with component_paint is now PaintingGenerator")
        else:
            notes.append("dropped generator.component_paint 0 (off)")
    return types, given, notes


def upgrade_model_dict(data: Mapping[str, Any]) -> dict:
    """A checkpoint's ``model_config`` in the current form (``{"type", "args"}`` per network):
    the flat form (field dicts, no types) is upgraded with :func:`upgrade_network_args`."""
    data = dict(data)
    parts = ("encoder", "generator", "discriminator")
    if all(isinstance(data.get(p), Mapping) and "type" in data[p] for p in parts if p in data):
        return data
    types = {"encoder": "Encoder", "generator": "Generator", "discriminator": "Discriminator"}
    given = {p: dict(data.get(p) or {}) for p in parts}
    types, given, _ = upgrade_network_args(str(data.get("arch")), types, given)
    if types["encoder"] == "OneCodeEncoder":
        given["encoder"] = {k: v for k, v in given["encoder"].items() if k in ONE_CODE_FIELDS}
    return {"arch": data.get("arch"), **{p: {"type": types[p], "args": given[p]} for p in parts}}
