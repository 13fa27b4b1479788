"""Discriminators for the IFG metric (image fidelity gap).

``load_discriminator(path)`` accepts
* a checkpoint of this project or a released IA-FaceS checkpoint holding a discriminator (the
  model's own D, loaded through ``model.checkpoint.load_models``);
* a StyleGAN2 discriminator in rosinality's ``stylegan2-pytorch`` layout (a file with a ``"d"``
  state_dict, or the bare state_dict): rebuilt as :class:`StyleGAN2Discriminator` (the IA-FaceS
  discriminator plus StyleGAN2's minibatch-stddev layer); size and channel multiplier are read
  from the tensor shapes;
* with ``trust_code`` (``--trust_code``) only, a TorchScript module mapping images in [-1, 1] to
  scores [B, 1]: loading TorchScript runs code stored in the file.
Every other file is read once, with the checkpoints' safe weights-only loader
(``model.official_checkpoint.load_checkpoint_file``); sizes read from it are checked against the
weights it holds before anything is allocated.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor

from model.checkpoint import build_models, is_iafaces_checkpoint, parse_checkpoint
from model.config import DiscriminatorConfig
from model.convert import ConversionError, load_official_state_dict
from model.layers import ConvLayer
from model.networks import Discriminator, check_image
from model.official_checkpoint import load_checkpoint_file
from utils.errors import CheckpointError, MetricError

from .metrics import build_bounded, load_torchscript


class StyleGAN2Discriminator(Discriminator):
    """rosinality's StyleGAN2 ``Discriminator``: the residual D of this project with the
    minibatch-stddev feature (group 4, one feature) before ``final_conv``. Batches whose size is
    not a multiple of 4 use the largest group size <= 4 that divides them."""

    stddev_group = 4
    stddev_feat = 1

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__(cfg)
        c4 = cfg.channels(4)
        self.final_conv = ConvLayer(c4 + 1, c4, 3)

    def forward(self, x: Tensor) -> Tensor:
        check_image(x, self.cfg.size)
        out = self.convs(x)
        b, c, h, w = out.shape
        group = next(g for g in range(min(b, self.stddev_group), 0, -1) if b % g == 0)
        s = out.view(group, -1, self.stddev_feat, c // self.stddev_feat, h, w)
        s = torch.sqrt(s.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        s = s.repeat(group, 1, h, w)
        out = self.final_conv(torch.cat([out, s], 1))
        return self.final_linear(out.flatten(1))

    @classmethod
    def from_state_dict(cls, state: dict, where: str = "discriminator") -> "StyleGAN2Discriminator":
        try:
            n = max(int(k.split(".")[1]) for k in state if k.startswith("convs.")) + 1
            c_top = int(state["convs.0.0.weight"].shape[0])
            c4 = int(state["final_conv.0.weight"].shape[0])  # the widest layer: channel_max
        except (ValueError, KeyError, AttributeError) as e:
            raise MetricError(f"{where}: not a StyleGAN2 discriminator state_dict (missing {e})") from None
        size = 2 ** (n + 1)
        try:
            cfg = DiscriminatorConfig(size=size, channel_base=c_top * size, channel_max=c4)
            net = build_bounded(lambda: cls(cfg), state, where)
        except ValueError as e:
            raise MetricError(f"{where}: unsupported StyleGAN2 discriminator ({e})") from None
        try:
            load_official_state_dict(net, state, where)
        except ConversionError as e:
            raise MetricError(str(e)) from None
        return net


def load_discriminator(path: Union[str, Path], device: torch.device = torch.device("cpu"),
                       trust_code: bool = False) -> torch.nn.Module:
    """A discriminator (eval mode, frozen) from ``path``; see the module docstring for formats."""
    path = Path(path)
    if not path.is_file():
        raise MetricError(f"discriminator file not found: {path}")
    net = load_torchscript(path, device, trust_code)
    if net is not None:
        return net
    try:
        raw = load_checkpoint_file(path)
    except CheckpointError as e:
        raise MetricError(f"cannot use {path} as a discriminator: {e}") from None
    if is_iafaces_checkpoint(raw):
        return build_models(*parse_checkpoint(raw, path), path, device, discriminator=True).discriminator
    state: Optional[dict] = None
    if isinstance(raw, dict) and isinstance(raw.get("d"), dict):
        state = raw["d"]
    elif isinstance(raw, dict) and "convs.0.0.weight" in raw:
        state = raw
    if state is None:
        raise MetricError(f"{path} holds no discriminator: give a checkpoint with one, a StyleGAN2 (rosinality) "
                          "file with a 'd' state_dict, or a TorchScript module with --trust_code")
    net = StyleGAN2Discriminator.from_state_dict(dict(state), f"{path}: d")
    return net.to(device).eval().requires_grad_(False)
