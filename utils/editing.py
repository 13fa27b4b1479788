"""Face editing with a trained IA-FaceS model: reconstruction, component transfer and attribute
manipulation. The command-line scripts (``reconstruction.py``, ``component_transfer.py``,
``attr_manipulation.py``) are thin wrappers around this module.

Shapes: images ``[B, 3, S, S]`` in [-1, 1]; content ``[B, Cc, s0, s0]``; components ``[B, 4, D]``
in the order ``l_eye, r_eye, nose, mouth``.

    from utils.editing import Editor
    from utils.boundaries import get_boundary
    ed = Editor.from_checkpoint("saved/models/run/model_best.pth", device="auto")
    content, comps = ed.encode(images)                       # images [B, 3, S, S]
    swapped = ed.transfer(comps, reference_comps, "eyes")    # target content is kept
    b = get_boundary(ed, "Mouth_Slightly_Open")              # fitted once, then stored
    opened = ed.decode(content, ed.apply_direction(comps, b, 4.0, "mouth"))
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor

from model.boxes import COMPONENT_GROUPS, COMPONENTS, parse_components
from utils.cli import UserError
from utils.image_io import ImageError, make_grid, open_rgb, pil_to_tensor, resolve_inputs, save_image

PathLike = Union[str, os.PathLike]
ComponentSpec = Union[str, Sequence[Union[str, int]]]


class EditingError(UserError, ValueError):
    """Invalid editing request (unknown component, mismatched batches, ...)."""


# ------------------------------------------------------------------------------------------ presets
@dataclass(frozen=True)
class Preset:
    """An official attribute edit: the attribute whose boundary is followed, the components that
    move, and the official strength ``alpha``."""
    attribute: str
    components: str
    strength: float
    note: str = ""


# Positive strengths move toward faces *with* the attribute (the SVM normal points to label +1).
# ``beard`` follows No_Beard with +9: it removes beards (the paper's "beard removal"); use a
# negative --strength to grow one.
PRESETS: dict[str, Preset] = {
    "mouth_open": Preset("Mouth_Slightly_Open", "mouth", 4.0, "opens the mouth"),
    "beard": Preset("No_Beard", "mouth", 9.0, "removes the beard (toward No_Beard)"),
    "bushy": Preset("Bushy_Eyebrows", "eyes", 2.5, "bushier eyebrows"),
    "bags": Preset("Bags_Under_Eyes", "eyes", 2.5, "bags under the eyes"),
    "arched": Preset("Arched_Eyebrows", "eyes", 5.0, "arched eyebrows"),
    "narrow_eyes": Preset("Narrow_Eyes", "eyes", 2.0, "narrower eyes"),
    "male": Preset("Male", "all", 2.5, "more masculine"),
}


def component_indices(spec: ComponentSpec) -> tuple[int, ...]:
    """``"eyes,nose"``, ``["eyes", "nose"]`` or ``(0, 1, 2)`` -> sorted component indices."""
    if isinstance(spec, str):
        try:
            return parse_components(spec)
        except ValueError as e:
            raise EditingError(str(e)) from None
    idx: set[int] = set()
    for item in spec:
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < len(COMPONENTS):
                raise EditingError(f"component index {item} out of range 0..{len(COMPONENTS) - 1}")
            idx.add(item)
        else:
            idx.update(component_indices(str(item)))
    if not idx:
        raise EditingError(f"no component given; choose from {', '.join(COMPONENT_GROUPS)}")
    return tuple(sorted(idx))


def component_label(spec: ComponentSpec) -> str:
    """File-name friendly label of a component selection (``eyes,nose`` -> ``eyes+nose``)."""
    if isinstance(spec, str):
        return "+".join(p.strip() for p in spec.split(",") if p.strip())
    return "+".join(COMPONENTS[i] for i in component_indices(spec))


# ------------------------------------------------------------------------------------------- editor
class Editor:
    """Encoder + generator of one checkpoint, in eval mode, for batched editing without gradients.

    ``encode``/``decode`` accept tensors on any device, run in chunks of ``batch_size`` on
    ``device`` and return float32 CPU tensors."""

    def __init__(self, encoder: torch.nn.Module, generator: torch.nn.Module, device: torch.device,
                 batch_size: int = 8, checkpoint: Optional[str] = None, config: Optional[dict] = None):
        self.encoder, self.generator, self.device = encoder.eval(), generator.eval(), torch.device(device)
        self.batch_size = max(1, int(batch_size))
        self.checkpoint = checkpoint
        self.config = dict(config or {})  # the checkpoint's training configuration
        self._fingerprint: Optional[str] = None

    @classmethod
    def from_checkpoint(cls, path: PathLike, device: Union[str, torch.device] = "auto",
                        batch_size: int = 8) -> "Editor":
        """Load any checkpoint (the project's own or a released one) with its EMA networks."""
        from model.checkpoint import load_models

        path = Path(path)
        if not path.is_file():
            raise EditingError(f"checkpoint not found: {path}")
        try:
            dev = _resolve_device(device)
        except ValueError as e:
            raise EditingError(str(e)) from None
        m = load_models(path, device=dev)
        return cls(m.encoder, m.generator, m.device, batch_size, str(path), m.config)

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
            yield tuple(t[i:i + self.batch_size].to(self.device, torch.float32) for t in tensors)

    @torch.no_grad()
    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 3, S, S] in [-1, 1] -> (content [B, Cc, s0, s0], components [B, 4, D])."""
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, self.size, self.size):
            raise EditingError(f"images must have shape [B, 3, {self.size}, {self.size}], got {list(images.shape)}")
        cs, zs = [], []
        for (x,) in self._chunks(images):
            c, z = self.encoder(x)
            cs.append(c.float().cpu())
            zs.append(z.float().cpu())
        return torch.cat(cs), torch.cat(zs)

    @torch.no_grad()
    def decode(self, content: Tensor, components: Tensor) -> Tensor:
        """(content [B, Cc, s0, s0], components [B, 4, D]) -> images [B, 3, S, S] clamped to [-1, 1]
        (noise buffers, i.e. deterministic)."""
        if content.shape[0] != components.shape[0]:
            raise EditingError(f"content and components batch sizes differ ({content.shape[0]} vs "
                               f"{components.shape[0]})")
        out = [self.generator(c, z, noise_mode="const").clamp(-1, 1).float().cpu()
               for c, z in self._chunks(content, components)]
        return torch.cat(out)

    def reconstruct(self, images: Tensor) -> Tensor:
        """G(E(x)): images [B, 3, S, S] -> reconstructions [B, 3, S, S]."""
        return self.decode(*self.encode(images))

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
        ``z[:, i] += strength * n_i``. ``boundary``: a :class:`utils.boundaries.Boundary` or a tensor
        of unit normals [4, D] (one per component). ``component_spec`` defaults to all four."""
        normals = boundary.normals if hasattr(boundary, "normals") else torch.as_tensor(boundary)
        if tuple(normals.shape) != tuple(components.shape[1:]):
            raise EditingError(f"boundary normals {list(normals.shape)} do not match components "
                               f"{list(components.shape)}")
        idx = list(component_indices(component_spec if component_spec is not None else "all"))
        out = components.clone()
        out[:, idx] += float(strength) * normals[idx].to(out)
        return out


def _resolve_device(spec):
    from utils.device import resolve_device
    return resolve_device(spec)


# ------------------------------------------------------------------------- command-line helpers
class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2 through ``utils.cli.main_guard``)."""

    def error(self, message: str):  # noqa: D401
        raise UserError(f"{message} (see --help)")


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", required=True, metavar="CKPT",
                   help="checkpoint: the project's own or a released IA-FaceS .pth")
    p.add_argument("--img_dir", default=None,
                   help="folder that the entries of .txt list files resolve against (default: the list's folder)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: output/<checkpoint stem>/<task>/)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--batch_size", type=int, default=8, help="images per forward pass (default: 8)")
    p.add_argument("--grid", action="store_true", help="also write side-by-side sheets DIR/grid_*.png")


def open_editor(args) -> Editor:
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    return Editor.from_checkpoint(args.resume, args.device, args.batch_size)


def output_dir(args, task: str) -> Path:
    out = Path(args.out) if args.out else Path("output") / Path(args.resume).stem / task
    out.mkdir(parents=True, exist_ok=True)
    return out


def collect_inputs(values: Sequence[str], img_dir: Optional[str], what: str) -> list[Path]:
    """Expand files / folders / list files; check they exist; at least one image."""
    paths = resolve_inputs(values, img_dir)
    if not paths:
        raise UserError(f"no images found for {what} in {', '.join(values)}")
    for p in paths:
        if not p.is_file():
            raise ImageError(f"image not found: {p}")
    return paths


def check_unique_stems(paths: Sequence[Path], what: str) -> None:
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen and seen[p.stem] != p:
            raise UserError(f"two {what} share the file stem '{p.stem}' ({seen[p.stem]}, {p}); outputs are "
                            "named by stem, so run them separately with different --out folders")
        seen[p.stem] = p


class ImageLoader:
    """Loads images as [B, 3, S, S] batches at the model size; non-RGB images are converted,
    other sizes are resized (with one notice line on stderr for the whole run)."""

    def __init__(self, size: int, notice: Callable[[str], None] = lambda m: print(m, file=sys.stderr)):
        self.size, self.notice, self.resized = size, notice, 0

    def load(self, path: Path) -> Tensor:
        im = open_rgb(path)
        if im.size != (self.size, self.size):
            if self.resized == 0:
                self.notice(f"notice: resizing inputs to the model's {self.size}x{self.size} px "
                            f"(first: {path.name}, {im.size[0]}x{im.size[1]})")
            self.resized += 1
            from PIL import Image
            im = im.resize((self.size, self.size), Image.BICUBIC)
        return pil_to_tensor(im)

    def batch(self, paths: Sequence[Path]) -> Tensor:
        return torch.stack([self.load(p) for p in paths])


def batched(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class GridWriter:
    """Collects rows of images and writes them as sheets ``DIR/grid_NNN.png`` (``rows_per_sheet``
    rows each)."""

    def __init__(self, out_dir: Path, enabled: bool, rows_per_sheet: int = 16):
        self.out_dir, self.enabled, self.rows_per_sheet = out_dir, enabled, rows_per_sheet
        self.rows: list[list[Tensor]] = []
        self.written: list[Path] = []

    def add(self, row: Iterable[Tensor]) -> None:
        if not self.enabled:
            return
        self.rows.append([t.detach().cpu() for t in row])
        if len(self.rows) >= self.rows_per_sheet:
            self.flush()

    def flush(self) -> None:
        if self.enabled and self.rows:
            path = self.out_dir / f"grid_{len(self.written):03d}.png"
            save_image(make_grid(self.rows), path)
            self.written.append(path)
            self.rows = []


def progress(total: int, desc: str):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="img", disable=None, file=sys.stderr, leave=False)


def parse_strengths(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--strengths must be comma-separated numbers, got '{text}' "
                        "(write --strengths=-2,0,2 when the first value is negative)") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise UserError(f"--strengths must be comma-separated finite numbers, got '{text}'")
    return vals


def strength_tag(value: float) -> str:
    """File-name tag of a strength: 2.5 -> ``s2.5``, -3.0 -> ``s-3``."""
    return f"s{value:g}"
