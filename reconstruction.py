"""Reconstruct faces with an IA-FaceS model: ``G(E(x))`` (noise buffers, deterministic).

    python reconstruction.py --resume CKPT --data_path IMG_OR_DIR_OR_LIST [...] [--out DIR] [--grid] [--save_real]
    python reconstruction.py --resume CKPT --data_path photo.jpg --align --out DIR   # your own photo

Writes ``DIR/<name>.png`` per input (default DIR: ``output/<checkpoint stem>/reconstruction/``);
with ``--align`` it is the whole photo with the reconstructed face pasted back. ``--save_real`` also
writes the model-size input the network saw (decoded, resized with OpenCV INTER_LINEAR; with
``--align`` the aligned crop) as ``DIR/real/<name>.png``: the real images the reconstruction
metrics compare against, as the release's ``real/`` folder
(``python -m evaluation.compare --real DIR/real --fake DIR``).

``<name>`` is the input's stem; with ``--names release`` (the default for released checkpoints and
runs trained from the release's configs, see ``editing.cli``) an all-digit stem is written as the
number, as the release's script: FFHQ's ``00123.png`` -> ``123.png``, CelebA-HQ's ``7070.jpg`` ->
``7070.png``.
"""
from __future__ import annotations

import utils.omp  # noqa: F401  (first: OpenMP reads its wait policy when torch loads)

import sys
from itertools import chain

from editing.cli import GridWriter, Inputs, NamePlan, add_common_args, add_names_arg, check_align_args, \
    check_unique_stems, collect_inputs, open_editor, output_dir, output_names, photo_name_candidates
from utils.cli import ArgumentParser, main_guard, progress
from utils.image_io import save_image


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Reconstruct faces G(E(x)) with an IA-FaceS checkpoint.")
    p.add_argument("--data_path", nargs="+", required=True, metavar="INPUT",
                   help="image files, folders of images or .txt list files")
    p.add_argument("--save_real", action="store_true",
                   help="also write the resized input as DIR/real/<name>.png (the metrics' real images)")
    add_names_arg(p)
    add_common_args(p)
    return p


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_align_args(args)
    paths = collect_inputs(args.data_path, args.img_dir, "--data_path")
    check_unique_stems(paths, "inputs")
    output_dir(args, "reconstruction", paths, create=False)  # bad --out fails before the model loads
    editor = open_editor(args)
    names = output_names(args, editor, paths)
    out = output_dir(args, "reconstruction", paths)
    inputs = Inputs(editor, args, out, photos=paths, outputs=[f"{n}.png" for n in names])
    grid = GridWriter(out, args.grid)
    # With --all_faces, real/<stem>_face<k>.png of one photo must not meet real/<stem>.png of another.
    real_names = NamePlan()
    count = 0
    with progress(len(paths), "reconstruction") as bar:
        for items, x in inputs.batches(paths, editor.batch_size):
            y = editor.reconstruct(x)
            for it, xi, yi in zip(items, x, y):
                inputs.save(it, yi, out / f"{names[it.position]}.png")
                if args.save_real:
                    tag = it.photo.tag(it.face) if it.photo is not None else ""
                    base = real_names.claim(it.position, ".png",
                                            chain([names[it.position]], photo_name_candidates(it.path)), str(it.path))
                    save_image(xi, out / "real" / f"{base}{tag}.png")
                grid.add([xi, yi])
            count += len(items)
            bar.update(len({it.position for it in items}))
    grid.flush()
    line = real_names.notice("photos share file names, so their real/ crops are named apart")
    if line:
        print(line, file=sys.stderr)
    print(inputs.summary(f"{count} reconstruction(s)", len(paths)), file=sys.stderr)
    return inputs.status


if __name__ == "__main__":
    sys.exit(main())
