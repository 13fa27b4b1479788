"""Discriminators for the IFG metric (image fidelity gap), and what each kind is called in outputs.

``load_discriminator(path)`` accepts
* a checkpoint of this project or a released IA-FaceS checkpoint holding a discriminator (the
  model's own D, loaded through ``model.checkpoint.load_models``);
* a StyleGAN2 discriminator in rosinality's ``stylegan2-pytorch`` layout (a training checkpoint
  such as ``latest.pt`` with a ``"d"`` state_dict, or the bare state_dict): rebuilt as
  :class:`StyleGAN2Discriminator` (rosinality's residual blocks and minibatch-stddev layer); size
  and channel multiplier are read from the tensor shapes;
* with ``trust_code`` (``--trust_code``) only, a TorchScript module mapping images in [-1, 1] to
  scores [B, 1]: loading TorchScript runs code stored in the file.
Every other file is read once, weights only (``utils.safe_load.load_checkpoint_file`` with the
release's stand-ins plus one for the ``argparse.Namespace`` that rosinality's checkpoints hold);
sizes read from it are checked against the weights it holds before anything is allocated.

The paper's IFG uses one kind only: the release's 256-px StyleGAN2 discriminator (channel
multiplier 2, as the release's ``load_d_model`` builds it), kind ``"release"``. Every other kind
(:func:`discriminator_kind`) is labelled "not the paper's" by :func:`ifg_label`.
"""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn as nn
from torch import Tensor

from model.checkpoint import build_models, is_iafaces_checkpoint, parse_checkpoint
from model.config import DiscriminatorConfig
from model.convert import ConversionError, load_official_state_dict
from model.layers import ConvLayer, EqualLinear, ResBlock
from model.networks import Discriminator, check_image
from model.official_checkpoint import OFFICIAL_EXTRA_GLOBALS
from utils.errors import CheckpointError, MetricError
from utils.safe_load import load_checkpoint_file

from .metrics import build_bounded, load_torchscript

#: The release's IFG discriminator: ``Discriminator(256, channel_multiplier=2)`` (``load_d_model``).
RELEASE_SIZE = 256
RELEASE_CHANNEL_MULTIPLIER = 2
_CHANNEL_BASE_PER_MULTIPLIER = 16384  # rosinality: channels[r] = 64 * multiplier * 256 / r for r >= 64

#: Discriminator kinds (:func:`discriminator_kind`) in words, and the label every IFG output carries.
KIND_WORDS = {
    "release": "the release's 256-px StyleGAN2 discriminator",
    "stylegan2": "a StyleGAN2 discriminator other than the release's 256-px one",
    "checkpoint": "the checkpoint's own discriminator",
    "torchscript": "a TorchScript discriminator",
    "unknown": "a discriminator of unknown kind",
}
IFG_LABELS = {k: (f"IFG (the paper's: {w})" if k == "release" else f"IFG ({w}, not the paper's)")
              for k, w in KIND_WORDS.items()}
#: The release's discriminator on images held in memory (unclamped, unquantised, resized as floats).
IN_MEMORY_RELEASE_LABEL = f"IFG ({KIND_WORDS['release']} on in-memory images, not the paper's file pipeline)"


class _NamespaceState:
    """Harmless stand-in for the ``argparse.Namespace`` (``args``) in rosinality's checkpoints: the
    weights-only unpickler builds it with no arguments and hands it the pickled attribute dict,
    which it only records in :attr:`state`."""

    __slots__ = ("state",)

    def __new__(cls, *args: Any, **kwargs: Any) -> "_NamespaceState":
        if args or kwargs:
            raise pickle.UnpicklingError("Refused: argparse.Namespace was constructed with arguments")
        inst = object.__new__(cls)
        inst.state = {}
        return inst

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, Mapping):
            raise pickle.UnpicklingError(f"Refused: argparse.Namespace state has type {type(state).__name__}")
        self.state.update(state)


_EXTRA_GLOBALS = (*OFFICIAL_EXTRA_GLOBALS, (_NamespaceState, "argparse.Namespace"))


class RosinalityResBlock(ResBlock):
    """rosinality's discriminator ``ResBlock``: conv1 keeps the width (in -> in, 3x3), conv2
    in -> out 3x3 downsampling, skip in -> out 1x1 downsampling; IA-FaceS's own ``ResBlock``
    widens in conv1 instead. Forward and state_dict layout are the parent's. [B, I, H, W] ->
    [B, O, H/2, W/2]."""

    def __init__(self, in_ch: int, out_ch: int):
        nn.Module.__init__(self)  # the parent would build conv1 as in -> out
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, activate=False, bias=False)


class StyleGAN2Discriminator(Discriminator):
    """rosinality's StyleGAN2 ``Discriminator``: a 1x1 stem, :class:`RosinalityResBlock` per halving
    down to 4 px, the minibatch-stddev feature (group 4, one feature) before ``final_conv``, two
    linears. Image [B, 3, S, S] -> score [B, 1]. Batches whose size is not a multiple of 4 use the
    largest group size <= 4 that divides them (a single image: group 1, the feature is 1e-4)."""

    stddev_group = 4
    stddev_feat = 1

    def __init__(self, cfg: DiscriminatorConfig):
        nn.Module.__init__(self)  # the parent would build IA-FaceS's blocks
        self.cfg = cfg
        convs: list[nn.Module] = [ConvLayer(3, cfg.channels(cfg.size), 1)]
        res = cfg.size
        while res > 4:
            convs.append(RosinalityResBlock(cfg.channels(res), cfg.channels(res // 2)))
            res //= 2
        self.convs = nn.Sequential(*convs)
        c4 = cfg.channels(4)
        self.final_conv = ConvLayer(c4 + 1, c4, 3)
        self.final_linear = nn.Sequential(EqualLinear(c4 * 16, c4, activate=True), EqualLinear(c4, 1))

    @property
    def channel_multiplier(self) -> float:
        return self.cfg.channel_base / _CHANNEL_BASE_PER_MULTIPLIER

    @property
    def kind(self) -> str:
        """``"release"`` for the release's build (256 px, channel multiplier 2), else ``"stylegan2"``."""
        release = (self.cfg.size == RELEASE_SIZE and self.cfg.channel_max == 512
                   and self.channel_multiplier == RELEASE_CHANNEL_MULTIPLIER)
        return "release" if release else "stylegan2"

    def describe(self) -> str:
        return f"a {self.cfg.size}-px StyleGAN2 discriminator with channel multiplier {self.channel_multiplier:g}"

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
        """The network of a rosinality ``Discriminator`` state_dict (every key and shape checked)."""
        try:
            n = max(int(k.split(".")[1]) for k in state if k.startswith("convs.")) + 1
            c_top = int(state["convs.0.0.weight"].shape[0])
            c4 = int(state["final_conv.0.weight"].shape[0])  # the widest layer: channel_max
        except (ValueError, KeyError, AttributeError, IndexError) as e:
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


def discriminator_kind(net: nn.Module) -> str:
    """One of :data:`IFG_LABELS`: ``release`` / ``stylegan2`` (a :class:`StyleGAN2Discriminator`),
    ``checkpoint`` (IA-FaceS's own :class:`~model.networks.Discriminator`), ``torchscript``, or
    ``unknown``."""
    if isinstance(net, StyleGAN2Discriminator):
        return net.kind
    if isinstance(net, Discriminator):
        return "checkpoint"
    if isinstance(net, torch.jit.ScriptModule):
        return "torchscript"
    return "unknown"


def ifg_label(net: Optional[nn.Module], from_files: bool = False) -> Optional[str]:
    """What an IFG value scored by ``net`` is, for every output (None without a discriminator).

    Only the release's discriminator scoring image files with the release's preprocessing
    (``from_files``, :mod:`evaluation.release_ifg`) is the paper's IFG; the release's network on
    in-memory images is labelled as such."""
    if net is None:
        return None
    kind = discriminator_kind(net)
    if kind == "release" and not from_files:
        return IN_MEMORY_RELEASE_LABEL
    return IFG_LABELS[kind]


def is_paper_ifg_label(label: Optional[str]) -> bool:
    return label == IFG_LABELS["release"]


def read_discriminator_file(path: Path) -> Any:
    """The raw object of a weights file (never runs code from it); MetricError if unreadable."""
    try:
        return load_checkpoint_file(path, _EXTRA_GLOBALS)
    except CheckpointError as e:
        raise MetricError(f"cannot use {path} as a discriminator: {e}") from None


def stylegan2_state(raw: Any) -> Optional[dict]:
    """The rosinality discriminator state_dict in a loaded file (its ``"d"`` entry, or the file
    itself when it is a bare state_dict), or None."""
    if isinstance(raw, Mapping) and isinstance(raw.get("d"), Mapping):
        return dict(raw["d"])
    if isinstance(raw, Mapping) and "convs.0.0.weight" in raw:
        return dict(raw)
    return None


def load_discriminator(path: Union[str, Path], device: torch.device = torch.device("cpu"),
                       trust_code: bool = False) -> torch.nn.Module:
    """A discriminator (eval mode, frozen) from ``path``; see the module docstring for formats and
    :func:`discriminator_kind` / :func:`ifg_label` for what it is."""
    path = Path(path)
    if not path.is_file():
        raise MetricError(f"discriminator file not found: {path}")
    net = load_torchscript(path, device, trust_code)
    if net is not None:
        return net
    raw = read_discriminator_file(path)
    if is_iafaces_checkpoint(raw):
        return build_models(*parse_checkpoint(raw, path), path, device, discriminator=True).discriminator
    state = stylegan2_state(raw)
    if state is None:
        raise MetricError(f"{path} holds no discriminator: give a checkpoint with one, a StyleGAN2 (rosinality) "
                          "file with a 'd' state_dict, or a TorchScript module with --trust_code")
    net = StyleGAN2Discriminator.from_state_dict(state, f"{path}: d")
    return net.to(device).eval().requires_grad_(False)
