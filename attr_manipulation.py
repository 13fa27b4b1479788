"""Attribute manipulation with an IA-FaceS model: move component embeddings along the unit normal
of a per-component attribute boundary, ``components[:, i] += strength * n_i`` (the boundary's
recipe: the checkpoint's ``editing.boundary_recipe``, the release's linear SVM by default, or
``--recipe``; see docs/editing.md).

    python attr_manipulation.py --resume CKPT --data_path INPUT [...] --attr mouth_open
    python attr_manipulation.py ... --attr Left_Eye_Closed --component l_eye --strength 3
    python attr_manipulation.py ... --attr bushy --strengths=-2.5,0,2.5,5      # a sweep
    python attr_manipulation.py ... --attr beard --boundary_lists boundary_lists --label_img_dir CelebA-HQ-img
    python attr_manipulation.py ... --attr beard --pos_list beard.txt --neg_list no_beard.txt --label_img_dir IMGS

``--attr``: a preset (mouth_open, beard, bushy, bags, arched, narrow_eyes, male: official attribute,
components and strength; every preset *adds* its attribute, ``beard`` adds a beard) or any
attribute of the label source (then ``--component`` and ``--strength`` choose the edit). Positive
strengths move toward faces *with* the attribute (for ``beard``: with a beard). Boundaries use the
recipe the checkpoint's config names (``editing.boundary_recipe``), the release's
(``release``: SVC(kernel='linear') on raw embeddings, 47 % / 70-30, seeded) where it names none,
unless ``--recipe`` says otherwise (docs/editing.md); they are fitted from labels (SynthFaces, or
``--label_file``) or from positive/negative id lists (``--pos_list/--neg_list``, or
``--boundary_lists DIR`` with a preset: the release's ``boundary_lists`` folder), on first use, and
stored in ``<checkpoint folder>/boundaries/<checkpoint stem>/``. Writes ``DIR/<stem>.png``
(``DIR/<stem>_s<strength>.png`` for a sweep); default DIR
``output/<checkpoint stem>/attr_<name>[_<component>]/``. With ``--names release`` (the default for
released checkpoints and runs trained from the release's configs, see ``editing.cli``) an all-digit
stem is written as the number, as the release's script (``00123.png`` -> ``123.png``). With
``--align`` inputs are photos: the face is aligned, edited and pasted back into the photo.
"""
from __future__ import annotations

import utils.omp  # noqa: F401  (first: OpenMP reads its wait policy when torch loads)

import math
import sys
from pathlib import Path

from data_loader.synthfaces import ATTRIBUTE_COMPONENTS
from editing import (PRESETS, RECIPES, BoundaryError, LabelSource, ListLabels, component_indices, component_label,
                     default_boundary_dir, default_label_source, find_stored, get_boundary)
from editing.cli import (GridWriter, Inputs, add_common_args, add_names_arg, check_align_args, check_unique_stems,
                         collect_inputs, open_editor, output_dir, output_names, parse_strengths, strength_tag)
from model.boxes import COMPONENTS
from utils.cli import ArgumentParser, main_guard, progress
from utils.errors import UserError

DEFAULT_STRENGTH = 3.0


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Edit face attributes by moving component embeddings along attribute boundaries.")
    p.add_argument("--data_path", nargs="+", required=True, metavar="INPUT",
                   help="image files, folders of images or .txt list files")
    p.add_argument("--attr", required=True,
                   help=f"preset ({', '.join(PRESETS)}) or an attribute of the label source (e.g. Smiling)")
    p.add_argument("--component", default=None, metavar="SPEC",
                   help="components to move: eyes, l_eye, r_eye, nose, mouth, all or comma-separated "
                        "(default: the preset's / the attribute's components)")
    s = p.add_mutually_exclusive_group()
    s.add_argument("--strength", type=float, default=None,
                   help=f"edit strength alpha (default: the preset's; {DEFAULT_STRENGTH:g} otherwise)")
    s.add_argument("--strengths", default=None, metavar="A,B,C",
                   help="a sweep: one output <stem>_s<value>.png per strength (--strengths=-2,0,2 for negatives)")
    b = p.add_argument_group("boundaries")
    b.add_argument("--label_file", default=None,
                   help="CelebAMask-HQ-attribute-anno.txt (CelebA-HQ labels; needs --label_img_dir)")
    b.add_argument("--label_img_dir", default=None, help="folder with the images the label file names")
    b.add_argument("--num_label_faces", type=int, default=None,
                   help="labelled faces used to fit (SynthFaces default 2000; CelebA-HQ default all found)")
    b.add_argument("--label_source", default="auto", choices=("auto", "synthfaces", "celebahq"),
                   help="auto: CelebA-HQ with --label_file, else SynthFaces for SynthFaces-trained checkpoints")
    b.add_argument("--boundary_dir", default=None,
                   help="where boundaries are stored (default: <ckpt folder>/boundaries/<ckpt stem>/)")
    b.add_argument("--refit", action="store_true", help="refit the boundary even if one is stored")
    b.add_argument("--pos_list", default=None, metavar="FILE", help="fit from id lists: faces with the attribute "
                   "(e.g. the release's boundary_lists/beard.txt; ids resolve against --label_img_dir)")
    b.add_argument("--neg_list", default=None, metavar="FILE", help="faces without it (e.g. no_beard.txt)")
    b.add_argument("--boundary_lists", default=None, metavar="DIR", help="with a preset: the release's "
                   "boundary_lists folder; its <attr>.txt / no_<attr>.txt pair is used as --pos_list/--neg_list")
    b.add_argument("--recipe", default=None, choices=RECIPES, help="release (SVC(kernel='linear') on raw embeddings, "
                   "47%% / 70-30), standardized (the earlier LinearSVC on standardized embeddings), mean (difference "
                   "of the class means) or conditional (the attribute's effect with the other labels fixed); default: "
                   "the checkpoint's editing.boundary_recipe (release where its config names none)")
    b.add_argument("--boundary_seed", type=int, default=0, help="seed of the recipe's shuffles (default 0)")
    add_names_arg(p)
    add_common_args(p)
    return p


def default_components(attribute: str):
    """Components of a (CelebA-style) attribute, from the SynthFaces attribute table."""
    for name, comps in ATTRIBUTE_COMPONENTS.items():
        if name.lower() == attribute.lower() and comps:
            return ",".join(comps)
    return None


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_align_args(args)
    preset = PRESETS.get(args.attr.lower())
    if args.component is not None:
        component_indices(args.component)  # validate early
    if args.num_label_faces is not None and args.num_label_faces < 1:
        raise UserError("--num_label_faces must be positive")
    strengths = parse_strengths(args.strengths) if args.strengths is not None else None
    if args.strength is not None and not math.isfinite(args.strength):
        raise UserError(f"--strength must be a finite number, got {args.strength}")
    paths = collect_inputs(args.data_path, args.img_dir, "--data_path")
    check_unique_stems(paths, "inputs")
    if args.out:
        output_dir(args, "", paths, create=False)  # a bad --out fails before boundaries are fitted

    pos_list, neg_list = args.pos_list, args.neg_list
    if args.boundary_lists:
        if preset is None or pos_list or neg_list:
            raise UserError("--boundary_lists goes with a preset (--attr mouth_open, beard, ...) and without "
                            "--pos_list/--neg_list")
        pos_list = str(Path(args.boundary_lists) / f"{preset.positive_list}.txt")
        neg_list = str(Path(args.boundary_lists) / f"{preset.negative_list}.txt")
    if bool(pos_list) != bool(neg_list):
        raise UserError("give both --pos_list and --neg_list")
    editor = open_editor(args)
    names = output_names(args, editor, paths)
    bdir = args.boundary_dir or default_boundary_dir(args.resume)
    fit = dict(refit=args.refit, recipe=args.recipe, seed=args.boundary_seed)
    if pos_list:
        # A boundary from id lists points from the negative list to the positive one: +strength adds it.
        attribute = preset.list_attribute if preset else f"{Path(pos_list).stem}_vs_{Path(neg_list).stem}"
        source = ListLabels(pos_list, neg_list, args.label_img_dir, attribute, args.num_label_faces)
        sign = 1
        spec = args.component or (preset.components if preset else default_components(args.attr))
        boundary_args = dict(source=source, explicit_source=True)
    else:
        explicit = args.label_file is not None or args.label_source != "auto" or args.num_label_faces is not None
        source: LabelSource | None = None
        attribute = preset.attribute if preset else args.attr
        if preset is None and (args.refit or explicit or find_stored(bdir, attribute) is None):
            # Unknown names fail here, before any fitting, with the valid choices.
            source = default_label_source(editor, args.label_file, args.label_img_dir, args.num_label_faces,
                                          args.label_source)
            try:
                attribute = source.canonical(attribute)
            except BoundaryError:
                raise UserError(f"unknown attribute or preset '{args.attr}'; presets: {', '.join(PRESETS)}; "
                                f"attributes ({source.describe()['type']} labels): "
                                f"{', '.join(source.attribute_names)}") from None
        sign = preset.sign if preset else 1
        spec = args.component or (preset.components if preset else default_components(attribute))
        boundary_args = dict(explicit_source=explicit, source=source if source is not None else (
            lambda: default_label_source(editor, args.label_file, args.label_img_dir, args.num_label_faces,
                                         args.label_source)))
    if spec is None:
        raise UserError(f"'{attribute}' has no default components; choose them with --component "
                        "(eyes, l_eye, r_eye, nose, mouth, all)")
    idx = component_indices(spec)
    if strengths is None:
        strengths = [args.strength if args.strength is not None else (preset.strength if preset else DEFAULT_STRENGTH)]
    sweep = args.strengths is not None

    boundary = get_boundary(editor, attribute, bdir, **fit, **boundary_args)
    accs = ", ".join(f"{COMPONENTS[i]} {boundary.val_accuracy[i]:.2f}" for i in idx)
    print(f"boundary {boundary.attribute} ({boundary.source.get('type')} labels, {boundary.recipe} recipe): "
          f"validation accuracy {accs}",
          file=sys.stderr)
    for i in idx:
        if boundary.val_accuracy[i] < 0.6:
            print(f"notice: the {COMPONENTS[i]} boundary of {boundary.attribute} barely separates the labelled "
                  f"faces (validation accuracy {boundary.val_accuracy[i]:.2f}); the edit may be weak", file=sys.stderr)

    name = args.attr.lower() if preset else boundary.attribute
    task = f"attr_{name}" + (f"_{component_label(args.component)}" if args.component else "")
    out = output_dir(args, task, paths)
    def out_name(position: int, s: float) -> str:
        return f"{names[position]}_{strength_tag(s)}.png" if sweep else f"{names[position]}.png"

    inputs = Inputs(editor, args, out, photos=paths,
                    outputs=[out_name(k, s) for k in range(len(paths)) for s in strengths])
    grid = GridWriter(out, args.grid)
    count = 0
    with progress(len(paths), f"attribute {name}") as bar:
        for items, x in inputs.batches(paths, editor.batch_size):
            content, components = editor.encode(x)
            edits = [editor.decode(content, editor.apply_direction(components, boundary, sign * s, idx)) for s in strengths]
            recon = editor.decode(content, components) if args.grid else None
            for j, it in enumerate(items):
                for s, e in zip(strengths, edits):
                    inputs.save(it, e[j], out / out_name(it.position, s))
                if args.grid:
                    grid.add([x[j], recon[j]] + [e[j] for e in edits])
            count += len(items) * len(strengths)
            bar.update(len({it.position for it in items}))
    grid.flush()
    print(inputs.summary(f"{count} edit(s)", len(paths)), file=sys.stderr)
    return inputs.status


if __name__ == "__main__":
    sys.exit(main())
