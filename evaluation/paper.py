"""The paper's evaluation of one checkpoint in one command.

    python -m evaluation.paper --resume CKPT --data CelebA-HQ-img --lists official_eval_lists --out DIR \\
        [--discriminator latest.pt] [--deepface_arcface arcface_weights.h5] [--classifiers DIR] \\
        [--inception PATH] [--lpips_vgg PATH] [--device auto] [--limit N] [--steps 10]

``--lists`` is the release's evaluation data (``celebahq-lists/``, ``ffhq-lists/``,
``boundary_lists/``, ``attr_lists/``, ``metrics/``). Faces are read as the release's loader reads
them (``<int id>.jpg``, decoded, OpenCV INTER_LINEAR to the model size: ``utils.image_io.load_image``,
the reader of ``data_loader.image_datasets``). Outputs under ``DIR``:

1. ``reconstruction/real``, ``reconstruction/fake``: the model-size inputs and ``G(E(x))`` of
   ``test.txt``, named as the release (``str(int(id)).png``); MSE, PSNR, SSIM, LPIPS and FID of the
   two folders in the list's order (:func:`evaluation.compare.compare_pairs`, batches of 8).
2. ``transfer/<eyes|nose|mouth>/<target stem>.png`` (CelebA-HQ): line k of ``test.txt`` takes the
   component of line k of ``shuffled_test.txt``; MSE_irr and IFG against the target's
   reconstruction (:func:`evaluation.release_ifg.release_scores`: files read as ``d_score.py``),
   FID against ``reconstruction/real``.
3. ``attributes/<preset>/<id>.png`` and ``attributes/reconstruction/<id>.png`` (CelebA-HQ): every
   preset of :data:`editing.PRESETS` on its ``attr_lists`` faces (the faces without the attribute),
   the boundary fitted from ``boundary_lists/<attr>.txt`` and ``no_<attr>.txt`` with the
   ``release`` recipe; the release's attribute accuracy (NVIDIA's classifiers), MSE_irr, IFG and
   Arc-dis (DeepFace's ArcFace; the edits' own lists, see :func:`release_arc_dis`). For
   ``--curves`` presets, ``curves/<preset>/step_<k>/`` holds the edit at strength
   ``alpha * k / steps``; per step accuracy, MSE_irr and IFG go to ``curves/<preset>/`` in the
   release's curve layout and ``curves.png`` draws them beside the published curves.
4. ``paper.md`` (one table, every metric a number or ``skipped: needs <file>``), ``paper.json``
   (all numbers), ``examples_*.png``.

A metric whose weight file is missing is skipped with one line naming the file; IFG takes the
release's discriminator only. ``--limit N`` keeps the first N faces of each list: a quick look,
not the paper's protocol. Bad input ends with one ``error: ...`` line and exit status 2.
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Optional, Sequence, Union

import numpy as np
import torch

from data_loader.image_datasets import output_stem
from editing import PRESETS, Editor, ListLabels, default_boundary_dir, get_boundary
from editing.cli import output_dir
from model.lpips import VGG16_FILE
from utils.cli import ArgumentParser, main_guard, progress
from utils.device import resolve_device
from utils.errors import ImageError, MetricError, UserError
from utils.image_io import list_images, load_image, make_grid, read_list_entries, resolve_entry, save_image

from .celebahq_classifier import attribute_index, classifier_file_name, find_classifier_file, \
    release_attribute_accuracy
from .compare import compare_pairs, pair_files, write_json_atomic
from .curves import NO_IFG, Curve, plot_curves, published_curves, step_strengths, write_curve_data
from .deepface_arcface import (EYE_CASCADE, FACE_CASCADE, WEIGHTS_FILE, build_verifier, find_cascades,
                               release_arc_dis, release_list_name)
from .discriminators import IFG_LABELS
from .fid import INCEPTION_FILE, inception_features
from .metrics import lpips_model
from .release_ifg import load_release_discriminator, release_scores

#: The components the paper's component-transfer table reports.
TRANSFER_COMPONENTS = ("eyes", "nose", "mouth")
#: The presets whose curves the release publishes (``metrics/inter-curve-score``).
CURVE_PRESETS = ("beard", "bushy")
RECON_METRICS = {"mse": "MSE", "psnr": "PSNR", "ssim": "SSIM", "lpips": "LPIPS", "fid": "FID"}
#: The release's evaluation batch (``eval_recon.py -bz 8``).
EVAL_BATCH = 8
#: Which not_detecetd list Arc-dis excludes.
ARC_METHOD = "iafaces"
DATASETS = {"celebahq": ("celebahq-lists", ".jpg"), "ffhq": ("ffhq-lists", ".png")}
EXAMPLES = 4
FIGURES = ("curves.png", "examples_reconstruction.png", "examples_transfer.png", "examples_attributes.png")
LIMIT_NOTE = "only the first {n} faces of each list: a quick look, not the paper's protocol"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="The paper's evaluation of an IA-FaceS checkpoint: reconstruction, component "
                                   "transfer and attribute manipulation on the release's lists, in one command.")
    p.add_argument("--resume", required=True, metavar="CKPT", help="checkpoint: a released IA-FaceS .pth or the "
                   "project's own")
    p.add_argument("--data", required=True, metavar="DIR", help="the images: CelebA-HQ <int id>.jpg (e.g. "
                   "CelebAMask-HQ/CelebA-HQ-img) or FFHQ NNNNN.png")
    p.add_argument("--lists", required=True, metavar="DIR", help="the release's evaluation lists (celebahq-lists/, "
                   "ffhq-lists/, boundary_lists/, attr_lists/, metrics/)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (empty, or an earlier run's)")
    p.add_argument("--dataset", default="auto", choices=("auto", *DATASETS), help="whose test list to use (default: "
                   "from the checkpoint's training config; FFHQ has reconstruction only)")
    p.add_argument("--discriminator", default=None, metavar="PATH", help="for IFG: the release's latest.pt (a "
                   "256-px rosinality StyleGAN2); IFG is skipped without it")
    p.add_argument("--deepface_arcface", default=None, metavar="PATH", help=f"for Arc-dis: DeepFace's {WEIGHTS_FILE}")
    p.add_argument("--deepface_haar", default=None, metavar="DIR", help=f"{FACE_CASCADE} and {EYE_CASCADE} "
                   "(default: OpenCV's cv2.data)")
    p.add_argument("--classifiers", default=None, metavar="DIR", help="for attribute accuracy: NVIDIA's "
                   "celebahq-classifier-NN-<name>.pkl files")
    p.add_argument("--inception", default=None, metavar="PATH", help=f"for FID: pytorch-fid's {INCEPTION_FILE} "
                   "(default: torch hub's checkpoint folder)")
    p.add_argument("--lpips_vgg", default=None, metavar="PATH", help=f"for LPIPS: torchvision's {VGG16_FILE} "
                   "(default: torch hub's checkpoint folder)")
    p.add_argument("--presets", default=",".join(PRESETS), help=f"attribute presets (default: all, "
                   f"{','.join(PRESETS)}; 'none' skips part 3)")
    p.add_argument("--curves", default=",".join(CURVE_PRESETS), help="presets whose curves over --steps are "
                   "computed (default: beard,bushy, the published ones; 'none')")
    p.add_argument("--steps", type=int, default=10, help="edit steps of the curves (default 10)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N faces of each list "
                   "(not the paper's protocol)")
    p.add_argument("--boundary_dir", default=None, metavar="DIR", help="where boundaries are stored (default: "
                   "<checkpoint folder>/boundaries/<checkpoint stem>/, shared with attr_manipulation.py)")
    p.add_argument("--boundary_faces", type=int, default=None, metavar="N", help="faces per boundary list used to "
                   "fit (default: all, as the release)")
    p.add_argument("--arc_dis_lists", default="release", choices=("release", "edited"), help="Arc-dis lists: "
                   "'release' (default, the paper's numbers) keeps arc_dis.py's table, which sends bushy to "
                   "attr_lists/arched.txt and arched to bushy.txt (those faces are edited for it); 'edited' uses the "
                   "lists the edits are made on (no_bushy, no_arched)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch_size", type=int, default=16, help="images per forward pass (default 16)")
    return p


# --------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class Skip:
    """A metric left out because a weight file is missing: ``file`` would enable it, ``line`` says so."""
    file: str
    line: str

    @property
    def cell(self) -> str:
        return f"skipped: needs {self.file}"


Value = Union[float, str]


class Report:
    """The table rows (part, metric, value), the JSON data and the one-line notices of a run."""

    def __init__(self, out: Path, setup: dict):
        self.out, self.rows, self.skipped = out, [], {}
        self.data: dict = {"setup": setup}

    @staticmethod
    def say(line: str) -> None:
        print(line, file=sys.stderr)

    def skip(self, metric: str, skip: Skip) -> str:
        """The table cell of a skipped metric; its line is printed once per metric and file."""
        key = f"{metric}: {skip.file}"
        if key not in self.skipped:
            self.skipped[key] = skip.line
            self.say(f"notice: {metric} skipped: {skip.line}")
        return skip.cell

    def not_computed(self, metric: str, error: Exception) -> str:
        line = str(error).strip().splitlines()[0]
        self.say(f"notice: {metric} not computed: {line}")
        return f"not computed: {line}"

    def add(self, part: str, metric: str, value: Value) -> Value:
        self.rows.append((part, metric, value))
        return value

    def save(self, done: bool) -> Path:
        self.data["skipped"] = self.skipped
        self.data["complete"] = done
        path = self.out / "paper.json"
        write_json_atomic(path, json.dumps(self.data, indent=2, default=_json_default) + "\n")
        return path


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(type(v).__name__)


def format_value(v: Value) -> str:
    if isinstance(v, str):
        return v.replace("|", "/")
    return "nan" if math.isnan(v) else f"{v:.6g}"


def markdown(report: Report, figures: Sequence[Path]) -> str:
    s = report.data["setup"]
    lines = [f"# The paper's evaluation of `{s['checkpoint']}`", "",
             f"Images `{s['data']}`, lists `{s['lists']}` ({s['dataset']}), model size {s['size']} px, "
             f"device {s['device']}."]
    if s["limit"]:
        lines.append(f"**--limit {s['limit']}: {LIMIT_NOTE.format(n=s['limit'])}.**")
    lines += ["", "| part | metric | value |", "|---|---|---|"]
    lines += [f"| {part} | {metric} | {format_value(v)} |" for part, metric, v in report.rows]
    if report.skipped:
        lines += ["", "Skipped metrics and the file each needs:", ""]
        lines += [f"- {key}: {line}" for key, line in report.skipped.items()]
    notes = report.data.get("notes", [])
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    lines += ["", *[f"![{p.stem}]({p.name})" for p in figures]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- inputs
def face_list(list_file: Path, image_dir: Path, limit: Optional[int], ext: str) -> tuple[list[str], list[Path]]:
    """(entries, image paths) of the first ``limit`` entries of ``list_file`` (all without a
    limit), each resolved in ``image_dir`` as the release's loader does (``07070`` -> ``7070.jpg``)."""
    entries = read_list_entries(list_file)[:limit] if limit else read_list_entries(list_file)
    if not entries:
        raise UserError(f"{list_file} lists no image")
    existing = set(os.listdir(image_dir))
    paths = [resolve_entry(image_dir, e, ext, existing) for e in entries]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ImageError(f"{len(missing)} image(s) of {list_file} are not in {image_dir} (first: {missing[0].name}); "
                         "give the folder of the data set's images with --data")
    return entries, paths


def release_names(paths: Sequence[Path]) -> list[str]:
    """Output names of the release's reconstruction and attribute scripts: ``str(int(id))``."""
    names = [output_stem(p.stem, "release") for p in paths]
    if len(set(names)) < len(names):
        raise UserError(f"two images of one list have the same release name ({len(names) - len(set(names))} "
                        "repeats); the release names outputs str(int(id)).png")
    return names


def batches(paths: Sequence[Path], size: int, n: int):
    """(first index, paths, images [B, 3, size, size]) in chunks of ``n``."""
    for i in range(0, len(paths), n):
        chunk = paths[i:i + n]
        yield i, chunk, torch.stack([load_image(p, size, "opencv") for p in chunk])


def fresh_folder(folder: Path) -> Path:
    """``folder``, created, with the images of an earlier run removed (the release counts every file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in list_images(folder):
        p.unlink()
    return folder


def check_out(args, create: bool) -> Path:
    """The output folder: not holding an input, and empty or an earlier run's (it has ``paper.json``).
    ``create``: also create it and remove the report and figures of an earlier run."""
    out = output_dir(SimpleNamespace(out=args.out, resume=args.resume), "paper",
                     [Path(args.data), Path(args.lists), Path(args.resume)], create=create)
    if out.is_dir() and any(out.iterdir()) and not (out / "paper.json").is_file():
        raise UserError(f"--out {out} holds other files; give an empty folder (or an earlier paper.py output folder, "
                        "whose outputs are replaced)")
    if create:
        for name in ("paper.md", *FIGURES):
            (out / name).unlink(missing_ok=True)
    return out


def parse_names(text: str, valid: Sequence[str], flag: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip() and n.strip().lower() != "none"]
    bad = [n for n in names if n not in valid]
    if bad:
        raise UserError(f"{flag}: unknown preset '{bad[0]}'; choose from {', '.join(valid)} or none")
    return list(dict.fromkeys(names))


def pick_dataset(choice: str, config: dict) -> str:
    if choice != "auto":
        return choice
    ds = config.get("data_set")
    name = f"{config.get('data_name') or ''} {ds.get('type') if isinstance(ds, dict) else ''}".lower()
    return "ffhq" if "ffhq" in name else "celebahq"


# --------------------------------------------------------------------------- metric networks
@dataclass
class Nets:
    """What the metrics need, each loaded or a :class:`Skip`."""
    lpips: object
    fid: object
    ifg: object
    arcface: object
    classifiers: Optional[Path]

    def classifier(self, attribute: str) -> Union[Path, Skip]:
        """The classifier file of a CelebA attribute, or the Skip that names it."""
        index = attribute_index(attribute)
        if self.classifiers is None:
            return Skip(classifier_file_name(index), "attribute accuracy needs NVIDIA's CelebA-HQ attribute classifier "
                        f"{classifier_file_name(index)} (StyleGAN's metrics files); pass --classifiers DIR")
        try:
            return find_classifier_file(self.classifiers, index)
        except MetricError as e:
            return Skip(classifier_file_name(index), str(e))


def load_nets(args, device: torch.device, arcface: bool) -> Nets:
    def attempt(load, file):
        try:
            return load()
        except MetricError as e:
            return Skip(file, str(e))

    def verifier():
        try:
            find_cascades(args.deepface_haar)
        except MetricError as e:
            return Skip(f"{FACE_CASCADE} and {EYE_CASCADE}", str(e))
        return attempt(lambda: build_verifier(args.deepface_arcface, haar_dir=args.deepface_haar, device=device),
                       WEIGHTS_FILE)

    return Nets(
        lpips=attempt(lambda: lpips_model("pretrained", args.lpips_vgg, device), VGG16_FILE),
        fid=attempt(lambda: inception_features(args.inception, device=device), INCEPTION_FILE),
        ifg=attempt(lambda: load_release_discriminator(args.discriminator, device),
                    "latest.pt (the release's StyleGAN2 discriminator)"),
        arcface=verifier() if arcface else None,
        classifiers=Path(args.classifiers) if args.classifiers else None)


def loaded(x) -> bool:
    return x is not None and not isinstance(x, Skip)


# ----------------------------------------------------------------------------------- the parts
@dataclass
class Context:
    args: object
    editor: Editor
    out: Path
    report: Report
    nets: Optional[Nets]
    lists: Path
    data: Path
    ext: str
    limit: Optional[int]
    device: torch.device


def files_of(folder: Path, names: Sequence[str]) -> list[Path]:
    return [folder / f"{n}.png" for n in names]


def edit_scores(ctx: Context, part: str, edited: Sequence[Path], sources: Sequence[Path], components: str) -> dict:
    """MSE_irr and IFG of edits against their sources, from the files as the release's d_score.py."""
    ifg_net = ctx.nets.ifg if loaded(ctx.nets.ifg) else None
    rel = release_scores(edited, sources, ifg_net, components)
    values = {"mse_irr": ctx.report.add(part, "MSE_irr", rel.mse_irr)}
    if ifg_net is None:
        values["ifg"] = ctx.report.add(part, "IFG", ctx.report.skip("IFG", ctx.nets.ifg))
    else:
        values["ifg"], values["ifg_label"] = ctx.report.add(part, "IFG", rel.ifg), IFG_LABELS["release"]
    return values


def fid_of(ctx: Context, part: str, real: Sequence[Path], fake: Sequence[Path]) -> Value:
    if not loaded(ctx.nets.fid):
        return ctx.report.add(part, "FID", ctx.report.skip("FID", ctx.nets.fid))
    if len(real) < 2:
        return ctx.report.add(part, "FID", ctx.report.not_computed("FID", MetricError("FID needs at least 2 images")))
    pairs = [(f.stem, r, f) for r, f in zip(real, fake)]
    values, _ = compare_pairs(pairs, ["fid"], {"fid": ctx.nets.fid}, batch_size=EVAL_BATCH, device=ctx.device,
                              notice=ctx.report.say, desc=f"FID {part}")
    return ctx.report.add(part, "FID", values["fid"])


def run_reconstruction(ctx: Context, list_file: Path, entries: Sequence[str], paths: Sequence[Path]) -> dict:
    """Part 1: real/ and fake/ of the test list, and the release's reconstruction metrics."""
    names = release_names(paths)
    root = ctx.out / "reconstruction"
    real_dir, fake_dir = fresh_folder(root / "real"), fresh_folder(root / "fake")
    rows = []
    with progress(len(paths), "reconstruction") as bar:
        for i, chunk, x in batches(paths, ctx.editor.size, ctx.editor.batch_size):
            y = ctx.editor.reconstruct(x)
            for k in range(len(chunk)):
                save_image(x[k], real_dir / f"{names[i + k]}.png")
                save_image(y[k], fake_dir / f"{names[i + k]}.png")
                if len(rows) < EXAMPLES:
                    rows.append([x[k], y[k]])
            bar.update(len(chunk))
    part = f"reconstruction ({len(paths)} faces of {list_file.parent.name}/{list_file.name})"
    needs = {"lpips": ctx.nets.lpips, "fid": ctx.nets.fid}
    cells = {m: ctx.report.skip(RECON_METRICS[m], net) for m, net in needs.items() if isinstance(net, Skip)}
    if len(paths) < 2 and "fid" not in cells:
        cells["fid"] = ctx.report.not_computed("FID", MetricError("FID needs at least 2 images"))
    metrics = [m for m in RECON_METRICS if m not in cells]
    pairs = pair_files(real_dir, fake_dir, ctx.report.say, entries)
    values, _ = compare_pairs(pairs, metrics, {m: needs[m] for m in metrics if m in needs}, batch_size=EVAL_BATCH,
                              device=ctx.device, notice=ctx.report.say, desc="reconstruction metrics")
    result = {m: ctx.report.add(part, label, values[m] if m in values else cells[m])
              for m, label in RECON_METRICS.items()}
    save_image(make_grid(rows), ctx.out / "examples_reconstruction.png")
    ctx.report.data["reconstruction"] = {"list": str(list_file), "faces": len(paths), "real": str(real_dir),
                                         "fake": str(fake_dir), "batch_size": EVAL_BATCH, "metrics": result}
    return {"names": names, "real": files_of(real_dir, names), "fake": files_of(fake_dir, names)}


def transfer_pairs(ctx: Context) -> tuple[list[Path], list[Path]]:
    """(targets, references): line k of test.txt with line k of shuffled_test.txt (CelebA-HQ)."""
    lists = ctx.lists / DATASETS["celebahq"][0]
    _, targets = face_list(lists / "test.txt", ctx.data, ctx.limit, ctx.ext)
    _, references = face_list(lists / "shuffled_test.txt", ctx.data, ctx.limit, ctx.ext)
    if len(references) < len(targets):
        raise UserError(f"{lists / 'shuffled_test.txt'} has {len(references)} entries, test.txt {len(targets)}: line k "
                        "of one pairs with line k of the other")
    if len({p.stem for p in targets}) < len(targets):
        raise UserError(f"{lists / 'test.txt'} names a file twice; transfer outputs are named by the target's stem")
    return targets, references[:len(targets)]


def run_transfer(ctx: Context, recon: dict, targets: Sequence[Path], references: Sequence[Path]) -> None:
    """Part 2: each target takes one component of its reference; MSE_irr, IFG, FID per component."""
    stems = [p.stem for p in targets]  # the release's component_transfer.py keeps the target's stem
    dirs = {c: fresh_folder(ctx.out / "transfer" / c) for c in TRANSFER_COMPONENTS}
    rows = []
    with progress(len(targets), "component transfer") as bar:
        for i, chunk, x in batches(targets, ctx.editor.size, ctx.editor.batch_size):
            r = torch.stack([load_image(p, ctx.editor.size, "opencv") for p in references[i:i + len(chunk)]])
            content, comps = ctx.editor.encode(x)
            ref_comps = ctx.editor.encode(r)[1]
            edits = {c: ctx.editor.decode(content, Editor.transfer(comps, ref_comps, c)) for c in TRANSFER_COMPONENTS}
            for k in range(len(chunk)):
                for c, e in edits.items():
                    save_image(e[k], dirs[c] / f"{stems[i + k]}.png")
                if len(rows) < EXAMPLES:
                    rows.append([x[k], r[k]] + [edits[c][k] for c in TRANSFER_COMPONENTS])
            bar.update(len(chunk))
    result = {}
    for c, folder in dirs.items():
        part = f"transfer: {c} ({len(targets)} pairs)"
        edited = files_of(folder, stems)
        scores = edit_scores(ctx, part, edited, recon["fake"][:len(targets)], c)
        scores["fid"] = fid_of(ctx, part, recon["real"][:len(targets)], edited)
        result[c] = scores
    save_image(make_grid(rows), ctx.out / "examples_transfer.png")
    ctx.report.data["transfer"] = {"pairs": len(targets), "components": result}


def limited_lists(ctx: Context, list_names: Sequence[str]) -> Path:
    """The lists Arc-dis reads: ``--lists`` itself, or with ``--limit`` a copy under
    ``DIR/lists`` whose attribute lists hold their first N ids (and the not_detecetd lists)."""
    if not ctx.limit:
        return ctx.lists
    root = ctx.out / "lists"
    (root / "attr_lists").mkdir(parents=True, exist_ok=True)
    for name in list_names:
        entries = read_list_entries(ctx.lists / "attr_lists" / f"{name}.txt")[:ctx.limit]
        (root / "attr_lists" / f"{name}.txt").write_text("".join(f"{e}\n" for e in entries))
    for sub in ("metrics/not_detecetd", "not_detecetd"):
        src = ctx.lists / sub / f"{ARC_METHOD}.txt"
        if src.is_file():
            (root / sub).mkdir(parents=True, exist_ok=True)
            (root / sub / src.name).write_bytes(src.read_bytes())
    return root


def attribute_inputs(ctx: Context, presets: Sequence[str]) -> tuple[dict, dict]:
    """({preset: its attr_lists faces}, {preset: its boundary_lists labels}), every file checked."""
    faces, labels = {}, {}
    for name in presets:
        preset = PRESETS[name]
        faces[name] = face_list(ctx.lists / "attr_lists" / f"{preset.inputs}.txt", ctx.data, ctx.limit, ctx.ext)[1]
        labels[name] = ListLabels(ctx.lists / "boundary_lists" / f"{preset.positive_list}.txt",
                                  ctx.lists / "boundary_lists" / f"{preset.negative_list}.txt", ctx.data,
                                  preset.list_attribute, ctx.args.boundary_faces)
    return faces, labels


def arc_dis_list(ctx: Context, name: str) -> str:
    """The attr_lists file Arc-dis of preset ``name`` reads (``--arc_dis_lists``)."""
    return release_list_name(name, swap_bushy_arched=ctx.args.arc_dis_lists == "release")


def edit_faces(ctx: Context, paths: Sequence[Path], names: Sequence[str], boundary, preset, edit_dir: Path,
               recon_dir: Path, desc: str, strengths: Sequence[float] = (), step_dirs: Sequence[Path] = ()) -> list:
    """Reconstruct and edit ``paths`` into ``recon_dir``/``edit_dir`` (and each of ``strengths``
    into its ``step_dirs``) as ``<name>.png``; returns the first batch's (input, recon, edit)."""
    editor, first = ctx.editor, []
    with progress(len(paths), desc) as bar:
        for i, chunk, x in batches(paths, editor.size, editor.batch_size):
            content, comps = editor.encode(x)
            recon = editor.decode(content, comps)
            edit = editor.decode(content, editor.apply_direction(comps, boundary, preset.strength, preset.components))
            for k in range(len(chunk)):
                save_image(recon[k], recon_dir / f"{names[i + k]}.png")
                save_image(edit[k], edit_dir / f"{names[i + k]}.png")
            for s, folder in zip(strengths, step_dirs):
                step = editor.decode(content, editor.apply_direction(comps, boundary, s, preset.components))
                for k in range(len(chunk)):
                    save_image(step[k], folder / f"{names[i + k]}.png")
            if i == 0:
                first = [x[0], recon[0], edit[0]]
            bar.update(len(chunk))
    return first


def run_attributes(ctx: Context, presets: Sequence[str], curves: Sequence[str], faces: dict, labels: dict) -> None:
    """Part 3: every preset on its attr_lists faces, and the curves of ``curves``."""
    args, editor, report = ctx.args, ctx.editor, ctx.report
    bdir = Path(args.boundary_dir) if args.boundary_dir else default_boundary_dir(args.resume)
    arc_lists = limited_lists(ctx, sorted({arc_dis_list(ctx, n) for n in presets}))
    recon_dir = fresh_folder(ctx.out / "attributes" / "reconstruction")
    published = ctx.lists / "metrics" / "inter-curve-score"
    ifg_label = IFG_LABELS["release"] if loaded(ctx.nets.ifg) else NO_IFG
    results, curve_data, plots, rows = {}, {}, {}, []
    for name in presets:
        preset, paths = PRESETS[name], faces[name]
        names = release_names(paths)
        boundary = get_boundary(editor, preset.list_attribute, bdir, source=labels[name], explicit_source=True,
                                recipe="release", log=report.say)
        edit_dir = fresh_folder(ctx.out / "attributes" / name)
        strengths = step_strengths(preset.strength, args.steps) if name in curves else []
        step_dirs = [fresh_folder(ctx.out / "curves" / name / f"step_{k:02d}") for k in range(1, len(strengths) + 1)]
        first = edit_faces(ctx, paths, names, boundary, preset, edit_dir, recon_dir, f"attribute {name}", strengths,
                           step_dirs)
        if first:
            rows.append(first)
        arc_dir = edit_dir
        if loaded(ctx.nets.arcface) and arc_dis_list(ctx, name) != preset.inputs:
            # the release's table reads another list: that list's faces get the same edit
            arc_paths = face_list(ctx.lists / "attr_lists" / f"{arc_dis_list(ctx, name)}.txt", ctx.data, ctx.limit,
                                  ctx.ext)[1]
            arc_dir = fresh_folder(ctx.out / "attributes" / "arc_dis_faces" / name)
            edit_faces(ctx, arc_paths, release_names(arc_paths), boundary, preset, arc_dir, recon_dir,
                       f"attribute {name} (Arc-dis list {arc_dis_list(ctx, name)})")
        part = f"attribute: {name} ({len(paths)} faces of attr_lists/{preset.inputs}.txt, alpha {preset.strength:g})"
        sources = files_of(recon_dir, names)
        res = {"faces": len(paths), "list": preset.inputs, "strength": preset.strength,
               "components": preset.components, "boundary": boundary.source}
        res["accuracy"] = report.add(part, "accuracy", attribute_accuracy(ctx, edit_dir, preset.attribute, res))
        res.update(edit_scores(ctx, part, files_of(edit_dir, names), sources, preset.components))
        res["arc_dis"] = report.add(part, "Arc-dis", arc_dis(ctx, recon_dir, arc_dir, name, arc_lists, res))
        results[name] = res
        if strengths:
            curve_data[name], own = curve(ctx, name, step_dirs, strengths, names, sources, ifg_label)
            if own is not None:
                try:
                    plots[name] = published_curves(published, name)
                except UserError as e:
                    report.say(f"notice: {e}")
                    plots[name] = []
                plots[name].append(own)
    if rows:
        save_image(make_grid(rows), ctx.out / "examples_attributes.png")
    if plots:
        plot_curves(plots, ctx.out / "curves.png")
    report.data["attributes"] = results
    report.data["curves"] = curve_data


def attribute_accuracy(ctx: Context, folder: Path, attribute: str, res: dict) -> Value:
    clf = ctx.nets.classifier(attribute)
    if isinstance(clf, Skip):
        return ctx.report.skip("accuracy", clf)
    try:
        r = release_attribute_accuracy(folder, attribute, ctx.nets.classifiers, device=ctx.device)
    except MetricError as e:
        return ctx.report.not_computed("accuracy", e)
    res["accuracy_count"] = {"count": r.count, "counted": r.counted, "share": r.share, "classifier": r.classifier}
    return r.accuracy


def arc_dis(ctx: Context, real_dir: Path, fake_dir: Path, name: str, lists: Path, res: dict) -> Value:
    if not loaded(ctx.nets.arcface):
        return ctx.report.skip("Arc-dis", ctx.nets.arcface)
    try:
        with progress(0, f"Arc-dis {name}", "pair") as bar:
            r = release_arc_dis(real_dir, fake_dir, name, lists, ARC_METHOD,
                                swap_bushy_arched=ctx.args.arc_dis_lists == "release",
                                verifier=ctx.nets.arcface, progress=bar.update)
    except MetricError as e:
        return ctx.report.not_computed("Arc-dis", e)
    res["arc_dis_counts"] = {"used": r.n_used, "not_detected": r.n_dropped_undetected,
                             "excluded_by_list": r.n_excluded_by_list, "listed": r.n_listed, "list": r.list_file}
    return r.mean


def curve(ctx: Context, name: str, step_dirs: Sequence[Path], strengths: Sequence[float], names: Sequence[str],
          sources: Sequence[Path], ifg_label: str) -> tuple[dict, Optional[Curve]]:
    """Per step accuracy, MSE_irr and IFG of one preset; the curve files and the plotted curve
    (None without the classifier: accuracy is the curve's y axis)."""
    preset = PRESETS[name]
    ifg_net = ctx.nets.ifg if loaded(ctx.nets.ifg) else None
    clf = ctx.nets.classifier(preset.attribute)
    no_accuracy = ctx.report.skip("accuracy", clf) if isinstance(clf, Skip) else None
    counts, counted, accuracy, irr, gaps = [], [], [], [], []
    with progress(len(step_dirs), f"curve {name}", "step") as bar:
        for folder in step_dirs:
            rel = release_scores(files_of(folder, names), sources, ifg_net, preset.components)
            irr.append(rel.mse_irr)
            gaps.append(rel.ifg if ifg_net is not None else float("nan"))
            if no_accuracy is None:
                try:
                    r = release_attribute_accuracy(folder, preset.attribute, ctx.nets.classifiers, device=ctx.device)
                    counts.append(r.count)
                    counted.append(r.counted)
                    accuracy.append(r.accuracy)
                except MetricError as e:
                    no_accuracy = ctx.report.not_computed(f"curve accuracy ({name})", e)
            bar.update(1)
    data = {"strengths": list(strengths), "mse_irr": irr, "ifg": gaps, "ifg_label": ifg_label,
            "accuracy": accuracy if no_accuracy is None else no_accuracy, "counts": counts, "counted": counted}
    if no_accuracy is not None:
        return data, None
    write_curve_data(ctx.out / "curves" / name, counts, irr, gaps, ifg_label)
    return data, Curve("this checkpoint", name, np.array(accuracy), np.array(irr), np.array(gaps), ifg_label)


# ------------------------------------------------------------------------------------------- main
@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    if args.steps < 1:
        raise UserError("--steps must be at least 1")
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    presets = parse_names(args.presets, list(PRESETS), "--presets")
    curves = [c for c in parse_names(args.curves, list(PRESETS), "--curves") if c in presets]
    data, lists = Path(args.data), Path(args.lists)
    for folder, flag in ((data, "--data"), (lists, "--lists")):
        if not folder.is_dir():
            raise UserError(f"{flag} {folder} is not a folder")
    out = check_out(args, create=False)
    device = resolve_device(args.device)
    editor = Editor.from_checkpoint(args.resume, device, args.batch_size)
    dataset = pick_dataset(args.dataset, editor.config)
    list_dir, ext = DATASETS[dataset]
    if dataset != "celebahq" and presets:
        Report.say("notice: component transfer and attribute manipulation skipped: the release's transfer pairs and "
                   "attribute lists are CelebA-HQ's")
        presets, curves = [], []
    report = Report(out, {"checkpoint": str(args.resume), "data": str(data), "lists": str(lists), "dataset": dataset,
                          "size": editor.size, "device": str(device), "limit": args.limit, "steps": args.steps,
                          "presets": presets, "curves": curves, "transfer_components": list(TRANSFER_COMPONENTS),
                          "output_names": "release: str(int(id)).png; transfers keep the target's stem"})
    ctx = Context(args, editor, out, report, None, lists, data, ext, args.limit, device)
    # Every list and image is checked before the slow work.
    test_list = lists / list_dir / "test.txt"
    test_entries, test_paths = face_list(test_list, data, args.limit, ext)
    pairs = transfer_pairs(ctx) if dataset == "celebahq" else None
    faces, labels = attribute_inputs(ctx, presets)
    if args.limit:
        report.say(f"notice: --limit {args.limit}: {LIMIT_NOTE.format(n=args.limit)}")
    check_out(args, create=True)
    report.save(done=False)
    ctx.nets = load_nets(args, device, arcface=bool(presets))
    recon = run_reconstruction(ctx, test_list, test_entries, test_paths)
    if pairs is not None:
        run_transfer(ctx, recon, *pairs)
    if presets:
        run_attributes(ctx, presets, curves, faces, labels)
    figures = [out / f for f in FIGURES if (out / f).is_file()]
    report.data["notes"] = [
        "IFG: the release's 256-px StyleGAN2 discriminator only, each file read and resized to 256 as d_score.py.",
        ("Arc-dis: arc_dis.py's lists (bushy on attr_lists/arched.txt, arched on bushy.txt: the release's table; "
         "those faces are edited into attributes/arc_dis_faces/)" if args.arc_dis_lists == "release" else
         "Arc-dis: each edit's own list (bushy on no_bushy, arched on no_arched; not the release's table)")
        + ", minus metrics/not_detecetd/iafaces.txt with the release's removal loop."]
    report.save(done=True)
    (out / "paper.md").write_text(markdown(report, figures))
    print(f"wrote {out / 'paper.md'} and {out / 'paper.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
