"""Export of SynthFaces in the CelebA-HQ / CelebAMask-HQ layout.

``DIR/images/<id>.jpg`` (quality 95), ``DIR/{train,val,test}.txt`` (one id per line),
``DIR/CelebAMask-HQ-attribute-anno.txt`` and ``DIR/factors.json`` (``{"generator", "seed", "size",
"factors": {id: Factors.to_dict()}}``).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os

from PIL import Image
from tqdm import tqdm

from utils.errors import UserError

from ..attributes import write_attribute_file
from .factors import ATTRIBUTES, GENERATOR_VERSION, attribute_vector, sample_factors
from .render import render


class UsageError(UserError):
    """Bad user input (reported by the CLI as one line, exit status 2)."""


def export_splits(num: int, start: int = 0) -> dict[str, range]:
    """80/10/10 contiguous split of ids start..start+num-1 (val/test get one id each once num >= 3)."""
    n_val = num // 10 if num >= 30 else (1 if num >= 3 else 0)
    n_test = n_val
    n_train = num - n_val - n_test
    return {"train": range(start, start + n_train), "val": range(start + n_train, start + n_train + n_val),
            "test": range(start + n_train + n_val, start + num)}


def _prepare_out_dir(out: str, overwrite: bool = False) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"output directory '{out}' is a file; choose a folder")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise UsageError(f"output directory '{out}' is not empty; choose an empty or new folder, or pass --overwrite "
                         "to replace the data set files in it")
    try:
        os.makedirs(os.path.join(out, "images"), exist_ok=True)
        probe = os.path.join(out, ".write_test")
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"cannot write to output directory '{out}': {e.strerror or e}") from None


def _export_one(job):
    seed, idx, size, out = job
    f = sample_factors(seed, idx)
    Image.fromarray(render(f, size)).save(os.path.join(out, "images", f"{idx}.jpg"), quality=95)
    return idx, f.to_dict(), attribute_vector(f)


def export(out: str, num: int, size: int, seed: int, workers: int = 1, progress: bool = True,
           overwrite: bool = False, start: int = 0) -> None:
    """Write ``num`` faces (ids ``start`` on) in the CelebA-HQ layout (see module docs of
    ``data_loader.attributes``) into ``out``, which must be new or empty unless ``overwrite``."""
    _prepare_out_dir(out, overwrite)
    ids = range(start, start + num)
    jobs = [(seed, i, size, out) for i in ids]
    factors, attrs = {}, {}
    bar = tqdm(total=num, desc="synthfaces export", unit="img", disable=not progress)
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            for idx, fd, av in pool.imap_unordered(_export_one, jobs, chunksize=16):
                factors[idx], attrs[idx] = fd, av
                bar.update(1)
    else:
        for job in jobs:
            idx, fd, av = _export_one(job)
            factors[idx], attrs[idx] = fd, av
            bar.update(1)
    bar.close()
    for name, split in export_splits(num, start).items():
        with open(os.path.join(out, f"{name}.txt"), "w") as fh:
            fh.write("".join(f"{i}\n" for i in split))
    write_attribute_file(os.path.join(out, "CelebAMask-HQ-attribute-anno.txt"), ATTRIBUTES,
                         {f"{i}.jpg": attrs[i] for i in ids})
    with open(os.path.join(out, "factors.json"), "w") as fh:
        json.dump({"generator": GENERATOR_VERSION, "seed": seed, "size": size,
                   "factors": {str(i): factors[i] for i in ids}}, fh)
