"""Component transfer with an IA-FaceS model: the target keeps its content tensor and takes the
chosen component embeddings from the reference, ``z_target[:, idx] = z_reference[:, idx]``.

    python component_transfer.py --resume CKPT --target T [...] --reference R [...] --component eyes
    python component_transfer.py ... --component eyes nose mouth      # three separate transfers

Components: eyes, l_eye, r_eye, nose, mouth, all, or comma-separated combinations (``eyes,nose``).
Targets and references pair by position, or one reference serves every target;
``--pairs TARGETS.txt REFERENCES.txt`` pairs two list files line by line, as the release's
``test.txt`` with ``shuffled_test.txt`` (line k of one with line k of the other). Writes
``DIR/<target stem>.png`` (``DIR/<target stem>_<component>.png`` when several --component values
are given); default DIR ``output/<checkpoint stem>/component_transfer/``. The target's stem is kept
as it is, zero padding included (FFHQ's ``00123.png`` -> ``00123.png``), for every checkpoint: the
release's script names its outputs so too (unlike its reconstruction and attribute scripts, see
``editing.cli``). With ``--align`` targets and references are photos: both are aligned, and the
output is the target photo with the edited face pasted back (``--all_faces``: every face of the
target takes the reference's components).
"""
from __future__ import annotations

import utils.omp  # noqa: F401  (first: OpenMP reads its wait policy when torch loads)

import sys
from collections import Counter

import torch

from editing import Editor, component_indices, component_label
from editing.cli import GridWriter, Inputs, add_common_args, check_align_args, collect_inputs, open_editor, output_dir
from utils.cli import ArgumentParser, main_guard, progress
from utils.errors import UserError


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Transfer face components from reference faces to target faces.")
    p.add_argument("--target", nargs="+", default=None, metavar="INPUT",
                   help="target images: files, folders or .txt list files (they keep their content)")
    p.add_argument("--reference", nargs="+", default=None, metavar="INPUT",
                   help="reference images: one per target (paired by position) or a single one for all")
    p.add_argument("--component", nargs="+", required=True, metavar="SPEC",
                   help="eyes, l_eye, r_eye, nose, mouth, all or comma-separated combinations; several "
                        "values make separate outputs <target>_<component>.png")
    p.add_argument("--data_path", nargs="+", default=None, metavar="INPUT",
                   help="alias of --target (official flag)")
    p.add_argument("--pairs", nargs=2, default=None, metavar=("TARGET_LIST", "REFERENCE_LIST"),
                   help="two list files paired line by line (e.g. the release's test.txt and shuffled_test.txt; "
                        "entries resolve against --img_dir)")
    add_common_args(p)
    return p


def output_names(targets, references) -> list[str]:
    """Output base names: the target stem, or ``<target>_<reference>`` when target stems repeat."""
    names = [t.stem for t in targets]
    if len(set(names)) < len(names):
        names = [f"{t.stem}_{r.stem}" for t, r in zip(targets, references)]
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise UserError(f"several target/reference pairs would be written to the same file '{dup[0]}.png'; "
                        "give inputs with distinct file stems")
    return names


def list_pairs(target_list: str, reference_list: str, img_dir=None) -> tuple[list, list]:
    """(targets, references) of two list files paired line by line (the release's test.txt and
    shuffled_test.txt); the lists must have the same number of entries."""
    targets = collect_inputs([target_list], img_dir, "the target list")
    references = collect_inputs([reference_list], img_dir, "the reference list")
    if len(targets) != len(references):
        raise UserError(f"--pairs: {target_list} has {len(targets)} entries and {reference_list} {len(references)}; "
                        "line k of one pairs with line k of the other, so they must be equally long")
    return targets, references


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_align_args(args)
    specs = [s for s in args.component]
    for s in specs:
        component_indices(s)  # validate before any heavy work
    labels = [component_label(s) for s in specs]
    if len(set(labels)) < len(labels):
        raise UserError("the same --component value is given twice")
    if args.pairs:
        if args.target or args.reference or args.data_path:
            raise UserError("--pairs replaces --target/--reference; give one or the other")
        targets, references = list_pairs(*args.pairs, img_dir=args.img_dir)
    else:
        if not (args.target or args.data_path) or not args.reference:
            raise UserError("give --target (or --data_path) and --reference, or --pairs TARGET_LIST REFERENCE_LIST")
        targets = collect_inputs((args.target or []) + (args.data_path or []), args.img_dir, "--target")
        references = collect_inputs(args.reference, args.img_dir, "--reference")
    if len(references) not in (1, len(targets)):
        raise UserError(f"got {len(targets)} target(s) and {len(references)} reference(s); give one reference "
                        "per target (paired by position) or a single reference for all targets")
    single_ref = len(references) == 1
    pairs_ref = references * len(targets) if single_ref else references
    names = output_names(targets, pairs_ref)

    output_dir(args, "component_transfer", targets + references, create=False)
    editor = open_editor(args)
    out = output_dir(args, "component_transfer", targets + references)
    def out_name(position: int, label: str) -> str:
        return f"{names[position]}.png" if len(specs) == 1 else f"{names[position]}_{label}.png"

    inputs = Inputs(editor, args, out, photos=targets + references,
                    outputs=[out_name(k, label) for k in range(len(targets)) for label in labels])
    grid = GridWriter(out, args.grid)
    ref_crops: dict[int, object] = {}  # input number -> reference crop [3, S, S] (None: it failed)
    if single_ref:
        ref_crops[0] = inputs.crop(references[0], strict=True)
        single_ref_components = editor.encode(ref_crops[0][None])[1]  # encoded once, used for every target

    def ref_crop(position: int):
        if single_ref:
            return ref_crops[0]
        if position not in ref_crops:
            ref_crops[position] = inputs.crop(references[position])
        return ref_crops[position]

    count = 0
    with progress(len(targets), "component transfer") as bar:
        for items, x in inputs.batches(targets, editor.batch_size):
            keep = [k for k, it in enumerate(items) if ref_crop(it.position) is not None]
            if not keep:
                continue
            items, x = [items[k] for k in keep], x[keep]
            r_img = torch.stack([ref_crop(it.position) for it in items])
            content, components = editor.encode(x)
            ref_components = single_ref_components if single_ref else editor.encode(r_img)[1]
            edits = [editor.decode(content, Editor.transfer(components, ref_components, s)) for s in specs]
            recon = editor.decode(content, components) if args.grid else None
            for j, it in enumerate(items):
                for label, e in zip(labels, edits):
                    inputs.save(it, e[j], out / out_name(it.position, label))
                if args.grid:
                    grid.add([x[j], r_img[j], recon[j]] + [e[j] for e in edits])
            count += len(items) * len(specs)
            if not single_ref:  # references of finished inputs are not needed again
                for pos in [p for p in ref_crops if p < items[0].position]:
                    del ref_crops[pos]
            bar.update(len({it.position for it in items}))
    grid.flush()
    print(inputs.summary(f"{count} transfer(s)", len(targets)), file=sys.stderr)
    return inputs.status


if __name__ == "__main__":
    sys.exit(main())
