"""Plumbing shared by the editing scripts (``reconstruction.py``, ``component_transfer.py``,
``attr_manipulation.py``): common flags, inputs, outputs, image batches and grids, and the photo
flags (``--align``: detect, align like the training data, edit, paste back; see ``editing.align``)."""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence

import torch
from PIL import Image
from torch import Tensor

from utils.errors import AlignError, ImageError, UserError
from utils.image_io import (DEFAULT_RESIZE, RESIZE_METHODS, array_to_tensor, check_resize, make_grid, read_rgb_array,
                            resize_uint8, resolve_inputs, save_image)

from .align import DETECTORS, RECIPES, AlignedFace
from .editor import PRECISIONS, Editor


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
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32 (default, exact) or bf16 (autocast + channels-last: faster on AVX512-BF16 CPUs and GPUs)")
    p.add_argument("--resize", default=DEFAULT_RESIZE, choices=RESIZE_METHODS,
                   help="how inputs of another size are resized: opencv (default, the release's INTER_LINEAR) or "
                        "antialias (PIL bicubic with antialiasing)")
    add_align_args(p)


def open_editor(args) -> Editor:
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    return Editor.from_checkpoint(args.resume, args.device, args.batch_size, args.precision)


def output_dir(args, task: str, inputs: Sequence[Path] = (), create: bool = True) -> Path:
    """The output folder (``--out`` or ``output/<checkpoint stem>/<task>``), created and checked to
    be writable. No output may overwrite an input: a folder that holds any of ``inputs`` (at any
    depth: outputs go to subfolders too) is refused. ``create=False``: only these checks."""
    out = Path(args.out) if args.out else Path("output") / Path(args.resume).stem / task
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a folder for the outputs")
    target = out.resolve()
    for p in inputs:
        if target == Path(p).resolve() or target in Path(p).resolve().parents:
            raise UserError(f"--out {out} holds the input {p}: outputs could overwrite the inputs; choose a folder "
                            "outside the inputs' folders")
    if not create:
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UserError(f"cannot write to --out {out}: {e.strerror or e}") from None
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
    """Loads images as [B, 3, S, S] batches at the model size, as the release's loader: non-RGB
    images are converted, other sizes are resized with ``resize`` (default ``opencv``: OpenCV
    INTER_LINEAR; ``antialias``: PIL bicubic with antialiasing), with one notice line on stderr for
    the whole run."""

    def __init__(self, size: int, notice: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
                 resize: str = DEFAULT_RESIZE):
        self.size, self.notice, self.resized, self.resize = size, notice, 0, check_resize(resize)

    def load(self, path: Path) -> Tensor:
        a = read_rgb_array(path)
        if a.shape[:2] != (self.size, self.size):
            if self.resized == 0:
                self.notice(f"notice: resizing inputs to the model's {self.size}x{self.size} px with "
                            f"{self.resize} (first: {path.name}, {a.shape[1]}x{a.shape[0]})")
            self.resized += 1
            a = resize_uint8(a, self.size, self.resize)
        return array_to_tensor(a)

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


# ------------------------------------------------------------------------- photos (--align)
def add_align_args(p: argparse.ArgumentParser) -> None:
    """The photo flags: --align, --align_recipe, --save_aligned, --all_faces, --detector."""
    g = p.add_argument_group("photos (face alignment)")
    g.add_argument("--align", action="store_true",
                   help="inputs are photos: detect the face, align it like the model's training data, edit it "
                        "and paste it back; each output has its photo's size")
    g.add_argument("--align_recipe", choices=RECIPES, default=None,
                   help="alignment recipe (default: the checkpoint's data set picks it: celebahq for CelebA-HQ "
                        "models, ffhq for FFHQ and SynthFaces models)")
    g.add_argument("--save_aligned", action="store_true",
                   help="with --align: also write <stem>_aligned.png (the aligned crop) and "
                        "<output>_aligned_edit.png (its edit)")
    g.add_argument("--all_faces", action="store_true", help="with --align: edit every face (default: the largest)")
    g.add_argument("--detector", choices=DETECTORS, default="hog",
                   help="with --align: dlib face detector, hog (default, fast) or cnn (slower, more robust)")


def check_align_args(args: argparse.Namespace) -> None:
    """Photo flags other than --align need --align."""
    if not args.align:
        given = [f for f, v in (("--save_aligned", args.save_aligned), ("--all_faces", args.all_faces),
                                ("--align_recipe", args.align_recipe), ("--detector", args.detector != "hog")) if v]
        if given:
            raise UserError(f"{given[0]} needs --align")


@dataclass
class AlignedPhoto:
    """The aligned faces of one input photo (largest first)."""
    path: Path
    faces: list[AlignedFace]

    def tag(self, face: AlignedFace) -> str:
        """File-name tag of a face: ``""`` for a lone face, else ``_face<k>``."""
        return f"_face{face.index}" if len(self.faces) > 1 or face.index > 0 else ""

    def save_input(self, out_dir: Path) -> None:
        """``<stem>[_face<k>]_aligned.png``: the aligned crops."""
        for f in self.faces:
            Image.fromarray(f.image).save(out_dir / f"{self.path.stem}{self.tag(f)}_aligned.png")

    def save(self, edited: Sequence[Tensor], out_path: Path, save_aligned: bool = False) -> None:
        """Write the photo with the edited crops (one [3, S, S] per face) pasted back to
        ``out_path`` and, with ``save_aligned``, each edited crop to
        ``<out stem>[_face<k>]_aligned_edit.png``."""
        out = None
        for f, e in zip(self.faces, edited):
            out = f.paste(e, into=out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out).save(out_path)
        if save_aligned:
            for f, e in zip(self.faces, edited):
                save_image(e, out_path.with_name(f"{out_path.stem}{self.tag(f)}_aligned_edit.png"))


@dataclass
class Item:
    """One model-size input of a batch: input number ``position`` (its file ``path``) or, with
    --align, one face of that photo."""
    position: int
    path: Path
    photo: Optional[AlignedPhoto] = None
    face: Optional[AlignedFace] = None


class Inputs:
    """The scripts' inputs as batches of model-size crops and the writer of their outputs.

    Without --align each image is one item, resized to the model size (:class:`ImageLoader`). With
    --align each face of each photo is one item (the largest face, or all with --all_faces); a photo
    that cannot be aligned prints one ``error:`` line naming it, is counted in ``failed`` and the
    run goes on. :meth:`save` writes an edited crop: as an image, or (with --align) once every face
    of the photo has its edit for that output, the photo with all of them pasted back."""

    def __init__(self, editor: Editor, args: argparse.Namespace, out_dir: Path,
                 say: Callable[[str], None] = lambda m: print(m, file=sys.stderr)):
        check_align_args(args)
        self.editor, self.align, self.out_dir, self.say = editor, bool(args.align), out_dir, say
        self.save_aligned, self.all_faces = bool(getattr(args, "save_aligned", False)), bool(args.all_faces)
        self.aligner = editor.aligner(args.align_recipe, args.detector) if self.align else None
        self.loader = ImageLoader(editor.size, resize=getattr(args, "resize", DEFAULT_RESIZE))
        self.failed: list[Path] = []
        self.done: set[int] = set()
        self._pending: dict[tuple[int, Path], dict[int, Tensor]] = {}

    def load_photo(self, path: Path) -> Optional[AlignedPhoto]:
        """Align one photo (None, after one ``error:`` line, when it fails)."""
        try:
            faces = self.aligner.align(path, all_faces=self.all_faces, name=str(path))
        except AlignError as e:
            self.say(f"error: {e}")
            self.failed.append(path)
            return None
        for msg in self.aligner.skipped:
            self.say(f"notice: {msg}; skipped")
        photo = AlignedPhoto(Path(path), faces)
        if self.save_aligned:
            photo.save_input(self.out_dir)
        return photo

    def crop(self, path: Path, strict: bool = False) -> Optional[Tensor]:
        """One model-size crop [3, S, S] of an input, e.g. a reference face: the largest face with
        --align. A photo that fails gives None after one ``error:`` line (``strict``: raises)."""
        if not self.align:
            return self.loader.load(path)
        try:
            face = self.aligner.align(path, name=str(path))[0]
        except AlignError as e:
            if strict:
                raise
            self.say(f"error: {e}")
            self.failed.append(path)
            return None
        if self.save_aligned:
            Image.fromarray(face.image).save(self.out_dir / f"{Path(path).stem}_aligned.png")
        return face.crop

    def batches(self, paths: Sequence[Path], n: int, skip: Sequence[int] = ()) -> Iterator[tuple[list[Item], Tensor]]:
        """(items, x [B, 3, S, S]) in batches of at most ``n``; input numbers in ``skip`` are left out."""
        skip = set(skip)
        if not self.align:
            todo = [(i, p) for i, p in enumerate(paths) if i not in skip]
            for chunk in batched(todo, n):
                yield [Item(i, p) for i, p in chunk], self.loader.batch([p for _, p in chunk])
            return
        items: list[Item] = []
        for i, p in enumerate(paths):
            if i in skip:
                continue
            photo = self.load_photo(p)
            if photo is None:
                continue
            for f in photo.faces:
                items.append(Item(i, p, photo, f))
                if len(items) == n:
                    yield items, torch.stack([it.face.crop for it in items])
                    items = []
        if items:
            yield items, torch.stack([it.face.crop for it in items])

    def save(self, item: Item, edited: Tensor, path: Path) -> None:
        """Write the edited crop [3, S, S] of ``item`` to ``path`` (see the class). A non-finite
        crop (NaN weights or inputs) is an error, never a black image."""
        if not bool(torch.isfinite(edited).all()):
            raise UserError(f"the network's output for {item.path} holds NaN or infinite values (damaged "
                            f"weights or a non-finite strength); nothing written to {path}")
        if item.photo is None:
            save_image(edited, path)
        else:
            key = (id(item.photo), path)
            got = self._pending.setdefault(key, {})
            got[item.face.index] = edited
            if len(got) == len(item.photo.faces):
                item.photo.save([got[f.index] for f in item.photo.faces], path, self.save_aligned)
                del self._pending[key]
        self.done.add(item.position)

    def summary(self, what: str, total: int) -> str:
        """The closing line: what was written, for how many inputs, failures counted."""
        text = f"wrote {what} to {self.out_dir}"
        if self.align:
            text += f" for {len(self.done)} of {total} photo(s)"
        return text + (f"; {len(self.failed)} failed" if self.failed else "")

    @property
    def status(self) -> int:
        """Exit status: 2 when any input failed."""
        return 2 if self.failed else 0
