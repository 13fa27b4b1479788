"""The one place where network arguments in the form used before the variants had classes of
their own are upgraded: study options given under ``Encoder`` / ``Generator`` (training configs and
the flat ``model_config`` of older checkpoints) become ``BoxEncoder`` / ``PaintingGenerator``, and
the ``one_code`` architecture's encoder becomes ``OneCodeEncoder`` (dropping the options it never
read)."""
from __future__ import annotations

from typing import Any, Mapping

from .box_encoder import BoxEncoderConfig
from .one_code import OneCodeEncoderConfig

#: Encoder options of the box encoder, and their values in the old flat form when absent.
BOX_OPTIONS = {"content_input": "image", "component_input": "features", "crop_size": 16, "crop_channels": 32,
               "ring_fit": "mean", "crop_exclusive": False, "ring_exclusive": False}
ONE_CODE_FIELDS = {f for f in OneCodeEncoderConfig.__dataclass_fields__}


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
