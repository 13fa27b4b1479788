"""Face editing with a trained IA-FaceS model: reconstruction, component transfer and attribute
manipulation, and the official attribute presets. The command-line scripts
(``reconstruction.py``, ``component_transfer.py``, ``attr_manipulation.py``) are thin wrappers around
this package (``editing.cli`` holds their shared plumbing).

Shapes: images ``[B, 3, S, S]`` in [-1, 1]; content ``[B, Cc, s0, s0]``; components ``[B, 4, D]``
in the order ``l_eye, r_eye, nose, mouth``.

    from editing import Editor, get_boundary
    ed = Editor.from_checkpoint("saved/models/run/best.pth", device="auto")  # or latest.pth, checkpoint-epochN.pth
    content, components = ed.encode(images)                            # images [B, 3, S, S]
    swapped = ed.transfer(components, reference_components, "eyes")    # target content is kept
    b = get_boundary(ed, "Mouth_Slightly_Open")                        # fitted once, then stored
    opened = ed.decode(content, ed.apply_direction(components, b, 4.0, "mouth"))
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Union

import torch
from torch import Tensor

from model.boxes import ComponentSpec, component_indices
from model.checkpoint import load_models
from utils.device import native_bf16, resolve_device
from utils.errors import EditingError

if TYPE_CHECKING:
    from .align import AlignedFace, FaceAligner

PathLike = Union[str, os.PathLike]


# ------------------------------------------------------------------------------------------ presets
@dataclass(frozen=True)
class Preset:
    """An official attribute edit: the label attribute whose boundary is followed, the components
    that move, the official strength ``alpha`` and which way adds the attribute.

    Every official preset *adds* its attribute. ``sign`` is +1 when the label is the attribute
    itself and -1 when the label names its absence (CelebA's and SynthFaces' ``No_Beard`` for the
    beard edit): along a boundary fitted on the labels the edit is ``z += sign * alpha * n``.
    ``positive_list``/``negative_list`` name the release's ``boundary_lists`` files (a boundary fitted
    from them points from the negative to the positive list, so the edit is ``+alpha``);
    ``inputs`` names its ``attr_lists`` file: the faces without the attribute that it edits."""
    attribute: str
    components: str
    strength: float
    note: str = ""
    sign: int = 1
    positive_list: str = ""
    negative_list: str = ""
    inputs: str = ""

    def label_strength(self, strength: float) -> float:
        """The strength along a boundary fitted on ``attribute`` labels that adds the attribute."""
        return self.sign * float(strength)

    @property
    def list_attribute(self) -> str:
        """The name of a boundary fitted from the preset's id lists (``beard_vs_no_beard``)."""
        return f"{self.positive_list}_vs_{self.negative_list}"


# Strengths are the release's; each preset adds its attribute (the release's boundaries point from
# the negative list to the positive one). ``beard`` follows CelebA's No_Beard label with sign -1,
# i.e. toward faces *with* a beard.
PRESETS: dict[str, Preset] = {
    "mouth_open": Preset("Mouth_Slightly_Open", "mouth", 4.0, "opens the mouth", 1, "mouth_open", "mouth_close",
                         "mouth_close"),
    "beard": Preset("No_Beard", "mouth", 9.0, "adds a beard (away from No_Beard)", -1, "beard", "no_beard",
                    "no_beard"),
    "bushy": Preset("Bushy_Eyebrows", "eyes", 2.5, "bushier eyebrows", 1, "bushy", "no_bushy", "no_bushy"),
    "bags": Preset("Bags_Under_Eyes", "eyes", 2.5, "bags under the eyes", 1, "bags", "no_bags", "no_bags"),
    "arched": Preset("Arched_Eyebrows", "eyes", 5.0, "arched eyebrows", 1, "arched", "no_arched", "no_arched"),
    "narrow_eyes": Preset("Narrow_Eyes", "eyes", 2.0, "narrower eyes", 1, "narrow_eyes", "no_narrow_eyes",
                          "no_narrow_eyes"),
    "male": Preset("Male", "all", 2.5, "more masculine", 1, "male", "female", "female"),
}


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on a CPU that computes bf16 natively (:func:`utils.device.native_bf16`:
    2.3x faster at 256 px on an AVX512-BF16 CPU), else ``fp32``. A GPU stays in fp32 (TF32
    convolutions): at editing's batch of one an H200 decodes a 256-px face in 8.0 ms in fp32 and
    11.8 ms in bf16 (``python -m evaluation.speed --device cuda --parts edit``), the casts costing
    more than they save. ``fp32`` and ``bf16`` as given."""
    if precision not in PRECISIONS:
        raise EditingError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "auto":
        device = torch.device(device)
        return "bf16" if device.type == "cpu" and native_bf16(device) else "fp32"
    return precision


# ------------------------------------------------------------------------------------------- editor
class Editor:
    """Encoder + generator of one checkpoint, in eval mode, for batched editing without gradients.

    ``encode``/``decode`` accept tensors on any device, run in chunks of ``batch_size`` on
    ``device`` and return float32 CPU tensors. ``precision``: ``fp32`` (default, exact), ``bf16``
    (autocast and channels-last memory: about 2x faster on CPUs with AVX512-BF16 and on GPUs;
    outputs differ from fp32 by about 1 % of the image range) or ``auto`` (bf16 where the device
    computes it natively on a CPU, else fp32; the scripts' and the web page's default)."""

    def __init__(self, encoder: torch.nn.Module, generator: torch.nn.Module, device: torch.device,
                 batch_size: int = 8, checkpoint: Optional[str] = None, config: Optional[dict] = None,
                 precision: str = "fp32"):
        self.encoder, self.generator, self.device = encoder.eval(), generator.eval(), torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        if self.precision == "bf16":
            self.encoder.to(memory_format=torch.channels_last)
            self.generator.to(memory_format=torch.channels_last)
        self.batch_size = max(1, int(batch_size))
        self.checkpoint = checkpoint
        self.config = dict(config or {})  # the checkpoint's training configuration
        self._fingerprint: Optional[str] = None

    @classmethod
    def from_checkpoint(cls, path: PathLike, device: Union[str, torch.device] = "auto",
                        batch_size: int = 8, precision: str = "fp32") -> "Editor":
        """Load any checkpoint (the project's own or a released one) with its EMA networks;
        ``device``: ``auto``, ``cpu``, ``cuda[:N]`` or a torch.device."""
        path = Path(path)
        if not path.is_file():
            raise EditingError(f"checkpoint not found: {path}")
        dev = resolve_device(device)
        m = load_models(path, device=dev)
        return cls(m.encoder, m.generator, m.device, batch_size, str(path), m.config, precision)

    # ---- properties
    @property
    def size(self) -> int:
        return self.encoder.cfg.size

    @property
    def comp_dim(self) -> int:
        return self.encoder.cfg.comp_dim

    @property
    def data_set_type(self) -> Optional[str]:
        """``data_set.type`` of the checkpoint's training config (e.g. ``SynthFaces``), if any."""
        ds = self.config.get("data_set")
        return ds.get("type") if isinstance(ds, dict) else None

    def fingerprint(self) -> str:
        """SHA-1 of the encoder weights: boundaries fitted for other weights are not reused."""
        if self._fingerprint is None:
            h = hashlib.sha1()
            for k, v in sorted(self.encoder.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    # ---- networks
    def _chunks(self, *tensors: Tensor) -> Iterator[tuple[Tensor, ...]]:
        n = tensors[0].shape[0]
        for i in range(0, n, self.batch_size):
            chunk = tuple(t[i:i + self.batch_size].to(self.device, torch.float32) for t in tensors)
            if self.precision == "bf16":
                chunk = tuple(t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t for t in chunk)
            yield chunk

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 3, S, S] in [-1, 1] -> (content [B, Cc, s0, s0], components [B, 4, D])."""
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, self.size, self.size):
            raise EditingError(f"images must have shape [B, 3, {self.size}, {self.size}], got {list(images.shape)}")
        contents, components = [], []
        for (x,) in self._chunks(images):
            with self._autocast():
                c, comp = self.encoder(x)
            contents.append(c.float().cpu())
            components.append(comp.float().cpu())
        return torch.cat(contents), torch.cat(components)

    @torch.no_grad()
    def decode(self, content: Tensor, components: Tensor) -> Tensor:
        """(content [B, Cc, s0, s0], components [B, 4, D]) -> images [B, 3, S, S] clamped to [-1, 1]
        (noise buffers, i.e. deterministic)."""
        if content.shape[0] != components.shape[0]:
            raise EditingError(f"content and components batch sizes differ ({content.shape[0]} vs "
                               f"{components.shape[0]})")
        out = []
        for c, comp in self._chunks(content, components):
            with self._autocast():
                out.append(self.generator(c, comp, noise_mode="const").float().clamp(-1, 1).cpu())
        return torch.cat(out)

    def reconstruct(self, images: Tensor) -> Tensor:
        """G(E(x)): images [B, 3, S, S] -> reconstructions [B, 3, S, S]."""
        return self.decode(*self.encode(images))

    @property
    def boundary_recipe(self) -> str:
        """The boundary recipe the checkpoint's training config names (``editing.boundary_recipe``);
        ``release`` for released checkpoints and configs that do not name one."""
        return str((self.config.get("editing") or {}).get("boundary_recipe") or "release")

    # ---- photos: detect, align like the training data, paste back (editing.align)
    @property
    def align_recipe(self) -> str:
        """The alignment recipe of the checkpoint's training data: ``celebahq`` or ``ffhq``."""
        from .align import recipe_for
        return recipe_for(self.config, self.size)

    def aligner(self, recipe: Optional[str] = None, detector: str = "hog") -> "FaceAligner":
        """A :class:`editing.align.FaceAligner` for this model (cached per recipe and detector).
        ``recipe`` overrides the one the checkpoint's data set picks; models trained on 1024-px
        CelebA-HQ / FFHQ images get the recipe's 1024-px image resized to the model size."""
        from .align import FaceAligner, aligned_size_for

        recipe = recipe or self.align_recipe
        cache = self.__dict__.setdefault("_aligners", {})
        if (recipe, detector) not in cache:
            cache[(recipe, detector)] = FaceAligner(self.size, recipe, aligned_size_for(self.config, self.size),
                                                    detector)
        return cache[(recipe, detector)]

    def align(self, photo, recipe: Optional[str] = None, detector: str = "hog") -> "AlignedFace":
        """Detect the largest face of ``photo`` (a file, PIL image or uint8 [H, W, 3] array) and
        align it like the training data: ``.crop`` [3, S, S] in [-1, 1] for :meth:`encode`,
        ``.transform`` (crop -> photo), ``.landmarks`` [68, 2]; ``.paste(edited)`` returns the photo
        (uint8 [H, W, 3]) with the edited crop blended back. Raises ``AlignError`` kinds (no face,
        face too small, photo too large) with one-line messages."""
        return self.aligner(recipe, detector).align(photo)[0]

    def align_all(self, photo, recipe: Optional[str] = None, detector: str = "hog") -> list["AlignedFace"]:
        """Every face of ``photo`` large enough for the model, largest first (see :meth:`align`);
        paste several with ``out = face.paste(edited, into=out)``."""
        return self.aligner(recipe, detector).align(photo, all_faces=True)

    # ---- edits in embedding space (pure tensor functions)
    @staticmethod
    def transfer(target_components: Tensor, reference_components: Tensor, component_spec: ComponentSpec) -> Tensor:
        """Copy the selected component embeddings of the reference into the target:
        ``z[:, idx] = z_ref[:, idx]``. target [B, 4, D]; reference [B, 4, D] or [1, 4, D] (used for
        every target). Returns a new tensor; the content tensor of the target is left to the caller."""
        idx = list(component_indices(component_spec))
        if reference_components.ndim == 2:
            reference_components = reference_components[None]
        if reference_components.shape[0] not in (1, target_components.shape[0]) or \
                reference_components.shape[1:] != target_components.shape[1:]:
            raise EditingError(f"reference components {list(reference_components.shape)} do not match targets "
                               f"{list(target_components.shape)} (give one reference or one per target)")
        out = target_components.clone()
        out[:, idx] = reference_components[:, idx].to(out).expand(out.shape[0], -1, -1)
        return out

    @staticmethod
    def apply_direction(components: Tensor, boundary, strength: float,
                        component_spec: Optional[ComponentSpec] = None) -> Tensor:
        """Move the selected components along their boundary normals:
        ``z[:, i] += strength * n_i``. ``boundary``: a :class:`editing.boundaries.Boundary` or a tensor
        of unit normals [4, D] (one per component). ``component_spec`` defaults to all four."""
        normals = boundary.normals if hasattr(boundary, "normals") else torch.as_tensor(boundary)
        if tuple(normals.shape) != tuple(components.shape[1:]):
            raise EditingError(f"boundary normals {list(normals.shape)} do not match components "
                               f"{list(components.shape)}")
        if not math.isfinite(float(strength)):
            raise EditingError(f"the edit strength must be a finite number, got {strength}")
        idx = list(component_indices(component_spec if component_spec is not None else "all"))
        out = components.clone()
        out[:, idx] += float(strength) * normals[idx].to(out)
        return out

