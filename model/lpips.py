"""LPIPS(VGG), the perceptual network of the training loss and of the LPIPS metric, loaded offline:
the VGG16 backbone is read from a local file, never downloaded."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from utils.errors import ConfigError

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's file name for the ImageNet VGG16 weights
#: How a training config names the weights (the default ``hint`` of :func:`build_lpips`).
TRAINING_HINT = ("(or set loss.lpips_vgg_weights to its path), or set loss.p_loss_weight to 0 to train without the "
                 "perceptual term")


def default_vgg_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def build_lpips(backbone: str = "pretrained", vgg_weights: Optional[str] = None,
                hint: str = TRAINING_HINT) -> nn.Module:
    """``lpips.LPIPS(net='vgg')`` (VGG "net-lin" v0.1, inputs in [-1, 1]) in eval mode, frozen.

    The linear calibration layers ship with the ``lpips`` package; the VGG16 backbone is read
    from ``vgg_weights`` or torchvision's cache, never downloaded. ``backbone="random"`` uses an
    untrained VGG (for tests only). ``hint``: how the caller's user names another weights file.
    """
    import lpips  # optional heavy dependency, needed only when LPIPS is used

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if backbone == "random":
            model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
        else:
            path = Path(vgg_weights) if vgg_weights else default_vgg_path()
            if not path.is_file():
                raise ConfigError(
                    f"LPIPS needs the ImageNet VGG16 weights, not found at {path}: copy torchvision's "
                    f"'{VGG16_FILE}' into {default_vgg_path().parent} {hint}")
            model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
            _load_vgg_backbone(model, path)
    model.eval().requires_grad_(False)
    return model


def _load_vgg_backbone(model: nn.Module, path: Path) -> None:
    """Copy a torchvision VGG16 state_dict (``features.{i}.*``) into LPIPS's slices."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable weights file
        raise ConfigError(f"cannot read VGG16 weights {path}: {e.__class__.__name__}; "
                          "provide torchvision's vgg16 state_dict file") from None
    target = model.net.state_dict()
    mapped = {}
    for key in target:  # e.g. slice2.5.weight -> features.5.weight
        _, idx, name = key.split(".")
        src = f"features.{idx}.{name}"
        if src not in state or state[src].shape != target[key].shape:
            raise ConfigError(f"{path} is not a torchvision VGG16 state_dict (missing or mis-shaped {src})")
        mapped[key] = state[src]
    model.net.load_state_dict(mapped)
