"""The release's evaluation lists for a SynthFaces export, so that ``evaluation.paper`` runs on it.

    python -m data_loader.synthfaces --out EXPORT --num 1000 --start 12500 --size 64
    python -m evaluation.synth_lists EXPORT --out LISTS
    python -m evaluation.paper --resume CKPT --data EXPORT/images --lists LISTS --out DIR

Writes, from the export's splits and ground-truth attributes (``CelebAMask-HQ-attribute-anno.txt``):

* ``celebahq-lists/test.txt``: the export's test ids as ``<id>.jpg`` (the release's form);
  ``shuffled_test.txt``: the same ids in a seeded order in which no face is its own reference;
* ``attr_lists/<list>.txt``: per preset of :data:`editing.PRESETS`, the test faces with and without
  the attribute (the preset's ``positive_list`` and ``inputs``/``negative_list`` names; ``sign``
  gives the polarity, e.g. ``beard`` is ``No_Beard == -1``);
* ``boundary_lists/<list>.txt``: the same two lists over the export's train ids (the boundaries are
  fitted on faces that are never edited);
* ``metrics/not_detecetd/iafaces.txt``: empty (the release's exclusions name CelebA-HQ ids).

Ids are bare in ``attr_lists`` and ``boundary_lists``, as in the release's files.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from data_loader.attributes import read_attribute_file
from editing import PRESETS
from utils.cli import ArgumentParser, main_guard
from utils.errors import UserError
from utils.image_io import read_list_entries

ATTRIBUTE_FILE = "CelebAMask-HQ-attribute-anno.txt"
SPLIT_FILES = ("train.txt", "test.txt")


def _write(path: Path, entries) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{e}\n" for e in entries))
    os.replace(tmp, path)


def derangement(ids: list[str], seed: int) -> list[str]:
    """``ids`` in a seeded order where position k never holds ``ids[k]`` (a shift of a random
    permutation's cycle: k takes the next face of that cycle)."""
    if len(ids) < 2:
        raise UserError(f"the export's test split holds {len(ids)} face(s); component transfer needs 2 or more "
                        "(export more faces with --num)")
    order = np.random.default_rng(seed).permutation(len(ids))
    out = [""] * len(ids)
    for k in range(len(ids)):
        out[order[k]] = ids[order[(k + 1) % len(ids)]]
    return out


def split_by_attribute(ids: list[str], table: dict, names: list[str]) -> dict[str, list[str]]:
    """{list name: ids} for both lists of every preset, in ``ids`` order."""
    out: dict[str, list[str]] = {}
    for preset in PRESETS.values():
        column = names.index(preset.attribute)
        has = [i for i in ids if table[f"{i}.jpg"][column] * preset.sign > 0]
        lacks = [i for i in ids if table[f"{i}.jpg"][column] * preset.sign < 0]
        out[preset.positive_list] = has
        out[preset.negative_list] = lacks
        out[preset.inputs] = lacks
    return out


def write_release_lists(export_dir, out_dir, seed: int = 0) -> dict[str, int]:
    """Write the lists of this module's docstring; returns {relative path: number of entries}."""
    export_dir, out_dir = Path(export_dir), Path(out_dir)
    missing = [n for n in (ATTRIBUTE_FILE, *SPLIT_FILES) if not (export_dir / n).is_file()]
    if missing:
        raise UserError(f"{export_dir} is not a SynthFaces export (no {', '.join(missing)}); make one with "
                        "python -m data_loader.synthfaces --out DIR")
    try:
        names, table = read_attribute_file(export_dir / ATTRIBUTE_FILE)
    except ValueError as e:
        raise UserError(str(e)) from None
    splits = {n: read_list_entries(export_dir / f"{n}.txt") for n in ("train", "test")}
    unknown = [i for ids in splits.values() for i in ids if f"{i}.jpg" not in table]
    if unknown:
        raise UserError(f"{export_dir}: id {unknown[0]} of the splits has no row in {ATTRIBUTE_FILE}")
    written: dict[str, int] = {}

    def put(rel: str, entries) -> None:
        _write(out_dir / rel, entries)
        written[rel] = len(entries)

    test = splits["test"]
    put("celebahq-lists/test.txt", [f"{i}.jpg" for i in test])
    put("celebahq-lists/shuffled_test.txt", [f"{i}.jpg" for i in derangement(test, seed)])
    for folder, ids in (("attr_lists", test), ("boundary_lists", splits["train"])):
        for name, entries in split_by_attribute(ids, table, names).items():
            put(f"{folder}/{name}.txt", entries)
    put("metrics/not_detecetd/iafaces.txt", [])
    return written


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m evaluation.synth_lists",
                       description="Write the release's evaluation lists (celebahq-lists, attr_lists, boundary_lists) "
                                   "for a SynthFaces export, for python -m evaluation.paper --lists.")
    p.add_argument("export", help="a folder written by python -m data_loader.synthfaces --out")
    p.add_argument("--out", required=True, help="the lists folder to write (files in it are replaced)")
    p.add_argument("--seed", type=int, default=0, help="seed of shuffled_test.txt's order (default 0)")
    return p


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    written = write_release_lists(args.export, args.out, args.seed)
    small = sorted(rel for rel, n in written.items() if n == 0 and not rel.startswith("metrics/"))
    print(f"wrote {len(written)} lists to {args.out} ({written['celebahq-lists/test.txt']} test faces)")
    if small:
        print(f"notice: empty lists (no face of the split has that value): {', '.join(small)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
