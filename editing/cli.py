"""Plumbing shared by the editing scripts (``reconstruction.py``, ``component_transfer.py``,
``attr_manipulation.py``): common flags, inputs, outputs, image batches and grids, and the photo
flags (``--align``: detect, align like the training data, edit, paste back; see ``editing.align``).

Output names (``--names``, :func:`output_names`): ``reconstruction.py`` and
``attr_manipulation.py`` name an output after its input's stem. The release's scripts write the
image's id as a number (``str(int(id)) + ".png"``): FFHQ's ``00123.png`` becomes ``123.png``, while
CelebA-HQ's images (``7070.jpg``) already carry that spelling. ``--names release`` writes an
all-digit stem so (other stems unchanged), ``--names stem`` keeps every stem. The default is
``release`` for a checkpoint whose config is in the release's form (a released checkpoint) or
names ``editing.output_names`` ``release`` (a run trained from the release's config), ``stem``
otherwise. ``component_transfer.py`` keeps the target's stem, as the release's does."""
from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence

import torch
from PIL import Image
from torch import Tensor

from data_loader.image_datasets import OUTPUT_NAMES, output_stem
from model.variants.legacy import is_release_config
from utils.device import set_threads
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
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto (default: bf16 on CPUs that compute it natively, AVX512-BF16/AMX; fp32 elsewhere, GPUs "
                        "included, where one face at a time runs faster in fp32), fp32 (exact, what the parity tests "
                        "use) or bf16 (autocast + channels-last)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice, one per "
                   "core; fewer when another busy program shares the CPU)")
    p.add_argument("--resize", default=DEFAULT_RESIZE, choices=RESIZE_METHODS,
                   help="how inputs of another size are resized: opencv (default, the release's INTER_LINEAR) or "
                        "antialias (PIL bicubic with antialiasing)")
    add_align_args(p)


def add_names_arg(p: argparse.ArgumentParser) -> None:
    """``--names``: how outputs are named after their inputs (see the module docstring)."""
    p.add_argument("--names", choices=OUTPUT_NAMES, default=None,
                   help="output names: release (an all-digit input stem as the number, 00123 -> 123.png, as the "
                        "release's scripts) or stem (the input's stem as it is); default: release for released "
                        "checkpoints and runs trained from the release's configs, stem otherwise")


def default_output_names(config) -> str:
    """The output names of a checkpoint's training config: ``release`` for a config in the
    release's form, else its ``editing.output_names``, else ``stem``."""
    if is_release_config(config):
        return "release"
    editing = config.get("editing") if isinstance(config, dict) else None
    names = editing.get("output_names") if isinstance(editing, dict) else None
    return names if names in OUTPUT_NAMES else "stem"


def output_names(args, editor: Editor, paths: Sequence[Path]) -> list[str]:
    """The output stem of every input under ``--names`` (default: the checkpoint's,
    :func:`default_output_names`); a UserError when two inputs would get the same one."""
    names = args.names or default_output_names(editor.config)
    stems = [output_stem(p.stem, names) for p in paths]
    seen: dict[str, Path] = {}
    for p, stem in zip(paths, stems):
        if stem in seen and seen[stem] != p:
            raise UserError(f"the inputs {seen[stem]} and {p} would both be written as {stem}.png (--names {names}); "
                            "run them separately with different --out folders, or give --names stem")
        seen[stem] = p
    return stems


def open_editor(args) -> Editor:
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    set_threads(args.threads)
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
                        "<output>_aligned_edit.png (its edit); photos that share a file name get their folder's "
                        "name (or a number) in front, said in one notice line, so no file is written twice")
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


FACE_TAG = re.compile(r"_face\d+\Z")


def _untag(base: str) -> Optional[str]:
    """``base`` without one trailing ``_face<k>`` tag, or None when it has none."""
    m = FACE_TAG.search(base)
    return base[:m.start()] if m else None


class NamePlan:
    """File names of one run, decided before anything is written so that no output overwrites an
    input or another output of the run.

    ``fixed``: the plain names (relative paths) the run writes or must not touch. A *family* is a
    base name with the tags that --all_faces adds: ``<base><suffix>`` and ``<base>_face<k><suffix>``.
    :meth:`claim` gives a key (an input photo, an output) the first candidate base whose family
    holds none of the fixed names and meets no family already given out with the same suffix.
    Families with different suffixes never meet as long as no suffix ends another
    (``_aligned.png``, ``_aligned_edit.png``, ``_pasted.png``; ``.png`` only under ``real/``).
    Names compare case-insensitively (macOS and Windows folders). Every check is a set look-up:
    two families meet when their bases are equal or one is the other plus one ``_face<k>``."""

    def __init__(self, fixed: Iterable[str] = ()):
        self.fixed = {n.casefold() for n in fixed}
        self.given: dict[tuple, str] = {}
        self._heads: dict[str, tuple[set[str], set[str]]] = {}  # suffix -> fixed names' bases, and untagged
        self._bases: dict[str, tuple[set[str], set[str]]] = {}  # suffix -> bases given out, and untagged
        self.renamed: list[tuple[str, str]] = []  # (what, new name) of keys whose first candidate was taken

    def _fixed_heads(self, suffix: str) -> tuple[set[str], set[str]]:
        if suffix not in self._heads:
            heads = {n[:-len(suffix)] for n in self.fixed if n.endswith(suffix)}
            self._heads[suffix] = (heads, {u for u in map(_untag, heads) if u is not None})
        return self._heads[suffix]

    def free(self, base: str, suffix: str) -> bool:
        """Whether the family of ``base`` holds no fixed name and meets no family given out."""
        b, sfx = base.casefold(), suffix.casefold()
        heads, untagged_heads = self._fixed_heads(sfx)
        if b in heads or b in untagged_heads:  # <base><suffix> or <base>_face<k><suffix> is a fixed name
            return False
        given, untagged_given = self._bases.get(sfx, (set(), set()))
        return not (b in given or b in untagged_given or _untag(b) in given)

    def claim(self, key, suffix: str, candidates: Iterable[str], what: str = "") -> str:
        """The base of ``key``'s family (the same on every call for one key and suffix)."""
        if (key, suffix) in self.given:
            return self.given[(key, suffix)]
        for i, base in enumerate(candidates):
            if self.free(base, suffix):
                self.given[(key, suffix)] = base
                given, untagged = self._bases.setdefault(suffix.casefold(), (set(), set()))
                given.add(base.casefold())
                if _untag(base.casefold()) is not None:
                    untagged.add(_untag(base.casefold()))
                if i and what:
                    self.renamed.append((what, f"{base}{suffix}"))
                return base
        raise RuntimeError("name candidates ran out")  # the candidates below are endless

    def notice(self, why: str) -> Optional[str]:
        """One line naming the renamed files (the first three), or None."""
        if not self.renamed:
            return None
        shown = ", ".join(f"{what} -> {name}" for what, name in self.renamed[:3])
        more = f" and {len(self.renamed) - 3} more" if len(self.renamed) > 3 else ""
        return f"notice: {why}: {shown}{more}"


def photo_name_candidates(path: Path) -> Iterator[str]:
    """Bases for a photo's files: its stem, then its folders' names in front (``t2_a``,
    ``x_t2_a``), then a number after it (``a-2``, ``a-3``, ...)."""
    path = Path(path)
    yield path.stem
    folders = [f for f in reversed(path.resolve().parent.parts) if f not in ("", "/", "\\")]
    name = path.stem
    for f in folders:
        name = f"{f}_{name}"
        yield name
    k = 2
    while True:
        yield f"{path.stem}-{k}"
        k += 1


def numbered_candidates(base: str) -> Iterator[str]:
    """``base``, then ``base-2``, ``base-3``, ..."""
    yield base
    k = 2
    while True:
        yield f"{base}-{k}"
        k += 1


#: Suffixes of the --save_aligned files: the aligned crop of an input, the edited crop of an output.
ALIGNED, ALIGNED_EDIT = "_aligned.png", "_aligned_edit.png"


def plan_aligned_names(photos: Sequence[Path], outputs: Sequence[str], fixed: Iterable[str] = ()) -> NamePlan:
    """The --save_aligned names of a run that writes ``outputs`` (names in the output folder) for
    the input ``photos``: one aligned-crop base per photo file (the same file twice, e.g. a target
    that is also a reference, shares one), one edited-crop base per output."""
    plan = NamePlan([*outputs, *fixed])
    for p in photos:
        plan.claim(_file_key(p), ALIGNED, photo_name_candidates(p), str(p))
    for name in outputs:
        plan.claim(("output", name), ALIGNED_EDIT, numbered_candidates(Path(name).stem), name)
    return plan


def _file_key(path: Path) -> tuple:
    try:
        return ("file", str(Path(path).resolve()))
    except OSError:
        return ("file", str(Path(path).absolute()))


@dataclass
class AlignedPhoto:
    """The aligned faces of one input photo (largest first)."""
    path: Path
    faces: list[AlignedFace]

    def tag(self, face: AlignedFace) -> str:
        """File-name tag of a face: ``""`` for a lone face, else ``_face<k>``."""
        return f"_face{face.index}" if len(self.faces) > 1 or face.index > 0 else ""

    def save_input(self, out_dir: Path, base: Optional[str] = None) -> list[Path]:
        """``<base>[_face<k>]_aligned.png`` (``base``: the photo's stem unless given): the aligned
        crops. Returns the paths."""
        paths = []
        for f in self.faces:
            path = out_dir / f"{base or self.path.stem}{self.tag(f)}{ALIGNED}"
            Image.fromarray(f.image).save(path)
            paths.append(path)
        return paths

    def save(self, edited: Sequence[Tensor], out_path: Path, edit_base: Optional[str] = None) -> None:
        """Write the photo with the edited crops (one [3, S, S] per face) pasted back to
        ``out_path`` and, with ``edit_base``, each edited crop to
        ``<edit_base>[_face<k>]_aligned_edit.png`` beside it."""
        out = None
        for f, e in zip(self.faces, edited):
            out = f.paste(e, into=out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out).save(out_path)
        if edit_base is not None:
            for f, e in zip(self.faces, edited):
                save_image(e, out_path.with_name(f"{edit_base}{self.tag(f)}{ALIGNED_EDIT}"))


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
    of the photo has its edit for that output, the photo with all of them pasted back.

    With --save_aligned, ``photos`` (every photo whose aligned crop may be written: targets and
    references) and ``outputs`` (every output name :meth:`save` will be given) decide the names
    of the aligned and edited crops up front (:func:`plan_aligned_names`): none overwrites an
    output or another crop; photos that share a file name get their folder's name or a number,
    said in one notice line."""

    def __init__(self, editor: Editor, args: argparse.Namespace, out_dir: Path,
                 say: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
                 photos: Sequence[Path] = (), outputs: Sequence[str] = ()):
        check_align_args(args)
        self.editor, self.align, self.out_dir, self.say = editor, bool(args.align), out_dir, say
        self.save_aligned, self.all_faces = bool(getattr(args, "save_aligned", False)), bool(args.all_faces)
        self.aligner = editor.aligner(args.align_recipe, args.detector) if self.align else None
        self.loader = ImageLoader(editor.size, resize=getattr(args, "resize", DEFAULT_RESIZE))
        self.failed: list[Path] = []
        self.done: set[int] = set()
        self._pending: dict[tuple[int, Path], dict[int, Tensor]] = {}
        self.names: Optional[NamePlan] = None
        self._written: set[Path] = set()  # aligned crops written (a photo aligned twice is written once)
        self._noticed: set[tuple] = set()  # photos whose skipped detections were reported
        if self.align and self.save_aligned:
            if not photos or not outputs:
                raise ValueError("Inputs with --save_aligned needs the run's photos and outputs")
            self.names = plan_aligned_names(photos, outputs)
            line = self.names.notice("photos share file names, so their --save_aligned files are named apart")
            if line:
                self.say(line)

    def _aligned_base(self, path: Path) -> str:
        return self.names.claim(_file_key(path), ALIGNED, photo_name_candidates(path), str(path))

    def _say_rejected(self, path: Path) -> None:
        """The aligner's line on detections without a plausible face, once per photo file."""
        line = self.aligner.rejected_notice()
        if line and _file_key(path) not in self._noticed:
            self._noticed.add(_file_key(path))
            self.say(line)

    def load_photo(self, path: Path) -> Optional[AlignedPhoto]:
        """Align one photo (None, after one ``error:`` line, when it fails)."""
        try:
            faces = self.aligner.align(path, all_faces=self.all_faces, name=str(path))
        except AlignError as e:
            self.say(f"error: {e}")
            self.failed.append(path)
            return None
        self._say_rejected(path)
        for msg in self.aligner.skipped:
            self.say(f"notice: {msg}; skipped")
        photo = AlignedPhoto(Path(path), faces)
        if self.names is not None:
            base = self._aligned_base(photo.path)
            if not all(self.out_dir / f"{base}{photo.tag(f)}{ALIGNED}" in self._written for f in faces):
                self._written.update(photo.save_input(self.out_dir, base))
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
        self._say_rejected(path)
        if self.names is not None:
            target = self.out_dir / f"{self._aligned_base(Path(path))}{ALIGNED}"
            if target not in self._written:
                Image.fromarray(face.image).save(target)
                self._written.add(target)
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
                edit_base = None
                if self.names is not None:
                    edit_base = self.names.given.get((("output", path.name), ALIGNED_EDIT))
                    if edit_base is None:
                        raise ValueError(f"output {path.name} was not planned (Inputs(outputs=...))")
                item.photo.save([got[f.index] for f in item.photo.faces], path, edit_base)
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
