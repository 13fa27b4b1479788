"""Reconstruct faces with an IA-FaceS model: ``G(E(x))`` (noise buffers, deterministic).

    python reconstruction.py --resume CKPT --data_path IMG_OR_DIR_OR_LIST [...] [--out DIR] [--grid]

Writes ``DIR/<input stem>.png`` per input (default DIR: ``output/<checkpoint stem>/reconstruction/``).
"""
from __future__ import annotations

import sys

from editing.cli import (GridWriter, ImageLoader, add_common_args, batched, check_unique_stems, collect_inputs,
                         open_editor, output_dir)
from utils.cli import ArgumentParser, main_guard, progress
from utils.image_io import save_image


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Reconstruct faces G(E(x)) with an IA-FaceS checkpoint.")
    p.add_argument("--data_path", nargs="+", required=True, metavar="INPUT",
                   help="image files, folders of images or .txt list files")
    add_common_args(p)
    return p


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    paths = collect_inputs(args.data_path, args.img_dir, "--data_path")
    check_unique_stems(paths, "inputs")
    editor = open_editor(args)
    out = output_dir(args, "reconstruction")
    loader, grid = ImageLoader(editor.size), GridWriter(out, args.grid)
    with progress(len(paths), "reconstruction") as bar:
        for chunk in batched(paths, editor.batch_size):
            x = loader.batch(chunk)
            y = editor.reconstruct(x)
            for p, xi, yi in zip(chunk, x, y):
                save_image(yi, out / f"{p.stem}.png")
                grid.add([xi, yi])
            bar.update(len(chunk))
    grid.flush()
    print(f"wrote {len(paths)} reconstruction(s) to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
