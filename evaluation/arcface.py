"""Pluggable ArcFace backend for the Arc-dis metric (identity distance).

No ArcFace weights ship with the project. Two kinds of files are accepted (``--arcface PATH``):

* a ``state_dict`` of insightface's ``arcface_torch`` IResNet backbones (``iresnet18/34/50/100``,
  e.g. ``ms1mv3_arcface_r50_fp16/backbone.pth``); the depth, width, embedding size and input size
  are read from the tensor shapes, and :class:`IResNet` below rebuilds the network (read with the
  checkpoints' safe weights-only loader);
* with ``--trust_code`` only, a TorchScript module (``torch.jit.save``) mapping 112x112 face crops
  in [-1, 1] to embeddings: loading TorchScript runs code stored in the file.

Preprocessing (:class:`ArcFaceEmbedder`): IA-FaceS faces are aligned (FFHQ-style canonical boxes of
``model.boxes``), so instead of a landmark detector the crop is fixed: the square that puts the two
canonical eye centres on the eye positions of ArcFace's 112-px five-point template
(``ARCFACE_CROP``, in 1024-px canonical coordinates), resized to the network's input size.
Faces that a detector does not find can be excluded with ``detector`` in
:func:`evaluation.metrics.arc_dis`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from model.boxes import CANONICAL_BOXES, REFERENCE_SIZE
from utils.errors import MetricError

from .metrics import build_bounded, load_torchscript

ARCFACE_INPUT = 112
# Eye centres of insightface's 112x112 five-point alignment template (arcface_src).
ARCFACE_EYES = ((38.2946, 51.6963), (73.5318, 51.5014))

NO_BACKEND = ("Arc-dis needs an ArcFace model: pass --arcface WEIGHTS (a state_dict of insightface's arcface_torch "
              "iresnet18/34/50/100 backbone such as backbone.pth, or a TorchScript file with --trust_code); none "
              "ships with the project")


def _canonical_eye_centres() -> tuple[tuple[float, float], tuple[float, float]]:
    out = []
    for x0, y0, x1, y1 in CANONICAL_BOXES[:2]:
        out.append(((x0 + x1) / 2, (y0 + y1) / 2))
    return tuple(out)


def arcface_crop() -> tuple[float, float, float, float]:
    """Square crop ``(x0, y0, x1, y1)`` in canonical 1024-px coordinates that maps the canonical eye
    centres onto ArcFace's template eyes."""
    (lx, ly), (rx, ry) = _canonical_eye_centres()
    (tlx, tly), (trx, try_) = ARCFACE_EYES
    scale = math.hypot(trx - tlx, try_ - tly) / math.hypot(rx - lx, ry - ly)  # template px per canonical px
    side = ARCFACE_INPUT / scale
    cx_t, cy_t = (tlx + trx) / 2, (tly + try_) / 2
    cx, cy = (lx + rx) / 2, (ly + ry) / 2
    x0 = cx - cx_t / scale
    y0 = cy - cy_t / scale
    return (x0, y0, x0 + side, y0 + side)


ARCFACE_CROP = arcface_crop()


def crop_faces(images: Tensor, out_size: int = ARCFACE_INPUT,
               crop: Sequence[float] = ARCFACE_CROP) -> Tensor:
    """Crop ``crop`` (canonical coordinates, may leave the image: zero padding) from aligned faces
    [B, 3, S, S] and resize to ``out_size`` (bilinear, via an affine grid)."""
    B, _, H, W = images.shape
    x0, y0, x1, y1 = (c / REFERENCE_SIZE for c in crop)  # fractions of the image
    theta = torch.zeros(B, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = x1 - x0
    theta[:, 0, 2] = x0 + x1 - 1
    theta[:, 1, 1] = y1 - y0
    theta[:, 1, 2] = y0 + y1 - 1
    grid = F.affine_grid(theta, (B, 3, out_size, out_size), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ------------------------------------------------------------------------------ IResNet (insightface)
class IBasicBlock(nn.Module):
    """insightface's improved residual block: BN-conv-BN-PReLU-conv(stride)-BN + shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """insightface ``arcface_torch`` IResNet with the same parameter names (``conv1``, ``bn1``,
    ``prelu``, ``layer1..4``, ``bn2``, ``fc``, ``features``). ``layers=(3, 4, 14, 3)`` is r50;
    ``width`` 64 and ``input_size`` 112 are the released settings (smaller values: tests)."""

    def __init__(self, layers: Sequence[int] = (3, 4, 14, 3), num_features: int = 512, width: int = 64,
                 input_size: int = ARCFACE_INPUT):
        super().__init__()
        if input_size % 16:
            raise ValueError("IResNet input size must be a multiple of 16")
        self.input_size = input_size
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=1e-5)
        self.prelu = nn.PReLU(width)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1])
        self.layer3 = self._make_layer(width * 4, layers[2])
        self.layer4 = self._make_layer(width * 8, layers[3])
        self.bn2 = nn.BatchNorm2d(width * 8, eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(width * 8 * (input_size // 16) ** 2, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
        layers = [IBasicBlock(self.inplanes, planes, 2, down)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x.float()))

    @classmethod
    def from_state_dict(cls, state: dict) -> "IResNet":
        """Rebuild the architecture from a state_dict's keys and shapes, then load it (strict)."""
        try:
            width = int(state["conv1.weight"].shape[0])
            layers = []
            for k in range(1, 5):
                idx = {int(key.split(".")[1]) for key in state if key.startswith(f"layer{k}.")}
                if not idx:
                    raise KeyError(f"layer{k}")
                layers.append(max(idx) + 1)
            num_features, fc_in = (int(v) for v in state["fc.weight"].shape)
        except (KeyError, AttributeError, ValueError, IndexError) as e:
            raise MetricError(f"not an arcface_torch IResNet state_dict (missing {e})") from None
        spatial = math.isqrt(fc_in // (width * 8)) if width > 0 else 0
        if spatial < 1 or spatial * spatial * width * 8 != fc_in or max(layers) > 1000:
            raise MetricError(f"not an arcface_torch IResNet state_dict (fc input {fc_in} does not fit width {width}, "
                              f"or {max(layers)} blocks per stage)")
        net = build_bounded(lambda: cls(layers, num_features, width, spatial * 16), state, "IResNet state_dict")
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise MetricError(f"IResNet weights do not load: {str(e).splitlines()[0]}") from None
        return net


class ArcFaceEmbedder:
    """Callable: aligned faces [B, 3, S, S] in [-1, 1] -> L2-normalized embeddings [B, d]
    (canonical ArcFace crop, resize to the network's input size)."""

    def __init__(self, net: nn.Module, input_size: Optional[int] = None, crop: Sequence[float] = ARCFACE_CROP):
        self.net = net.eval()
        self.input_size = int(input_size or getattr(net, "input_size", ARCFACE_INPUT))
        self.crop = tuple(crop)
        params = list(net.parameters()) if hasattr(net, "parameters") else []
        self.device = params[0].device if params else torch.device("cpu")

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = crop_faces(images.float().to(self.device), self.input_size, self.crop)
        return F.normalize(self.net(x).float(), dim=1).cpu()


def load_arcface(path: Optional[Union[str, Path]], device="cpu", trust_code: bool = False) -> ArcFaceEmbedder:
    """An :class:`ArcFaceEmbedder` from an IResNet state_dict (read with the safe weights-only
    loader) or, with ``trust_code`` only, a TorchScript file; a clear MetricError when no file is
    given or it cannot be used."""
    from model.official_checkpoint import load_checkpoint_file
    from utils.errors import CheckpointError

    if not path:
        raise MetricError(NO_BACKEND)
    path = Path(path)
    if not path.is_file():
        raise MetricError(f"ArcFace weights not found: {path} ({NO_BACKEND.split(': ', 1)[1]})")
    net = load_torchscript(path, device, trust_code)
    if net is not None:
        return ArcFaceEmbedder(net)
    try:
        state = load_checkpoint_file(path)
    except CheckpointError as e:
        raise MetricError(f"cannot use {path} as ArcFace weights: {e}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise MetricError(f"{path}: not an IResNet state_dict (or a TorchScript file with --trust_code)")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return ArcFaceEmbedder(IResNet.from_state_dict(state).to(device))
