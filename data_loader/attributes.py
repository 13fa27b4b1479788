"""CelebAMask-HQ style attribute files.

Layout (``CelebAMask-HQ-attribute-anno.txt``)::

    30000
    5_o_Clock_Shadow Arched_Eyebrows ...
    0.jpg -1 1 1 ...
    1.jpg -1 -1 1 ...

Line 1 is the image count, line 2 the attribute names, then one line per image: the file name
followed by one ``1``/``-1`` per attribute. Runs of spaces/tabs are tolerated.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]


def read_attribute_file(path: PathLike) -> tuple[list[str], dict[str, np.ndarray]]:
    """Parse an attribute file.

    Returns ``(names, table)``: the attribute names in file order and a dict from image file name
    (e.g. ``"0.jpg"``) to an int8 array of ±1 values in ``names`` order (file order is kept).
    Raises ``ValueError`` with the offending line number on malformed content.
    """
    with open(path, "r", encoding="utf-8") as fh:
        lines = [(i + 1, ln.split()) for i, ln in enumerate(fh)]
    lines = [(n, toks) for n, toks in lines if toks]  # skip blank lines
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count line and a names line")
    n_line, count_toks = lines[0]
    if len(count_toks) != 1 or not count_toks[0].isdigit():
        raise ValueError(f"{path}:{n_line}: first line must be the image count, got {' '.join(count_toks)!r}")
    count = int(count_toks[0])
    names = list(lines[1][1])
    if len(set(names)) != len(names):
        raise ValueError(f"{path}:{lines[1][0]}: repeated attribute names")
    table: dict[str, np.ndarray] = {}
    for n_line, toks in lines[2:]:
        if len(toks) != len(names) + 1:
            raise ValueError(f"{path}:{n_line}: expected a file name and {len(names)} values, got {len(toks)} fields")
        try:
            vals = np.array([int(t) for t in toks[1:]], dtype=np.int8)
        except ValueError:
            raise ValueError(f"{path}:{n_line}: attribute values must be 1 or -1") from None
        if not np.all(np.abs(vals) == 1):
            raise ValueError(f"{path}:{n_line}: attribute values must be 1 or -1")
        if toks[0] in table:
            raise ValueError(f"{path}:{n_line}: repeated image {toks[0]}")
        table[toks[0]] = vals
    if len(table) != count:
        raise ValueError(f"{path}: header says {count} images but {len(table)} rows were found")
    return names, table


def write_attribute_file(path: PathLike, names: Sequence[str],
                         rows: Mapping[str, Sequence[Union[bool, int, float]]]) -> None:
    """Write ``rows`` (image file name -> values; truthy/positive = 1, else -1) in the layout above."""
    names = list(names)
    if any(not n or any(c.isspace() for c in n) for n in names):
        raise ValueError("attribute names must be non-empty and contain no whitespace")
    out = [str(len(rows)), " ".join(names)]
    for fname, vals in rows.items():
        vals = list(vals)
        if len(vals) != len(names):
            raise ValueError(f"{fname}: {len(vals)} values for {len(names)} attributes")
        out.append(fname + " " + " ".join("1" if float(v) > 0 else "-1" for v in vals))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n")
