"""``python -m editing.align``: write photos' faces aligned like a model's training data, or time
detection + alignment + paste-back (``--benchmark``)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from utils.errors import AlignError, UserError

from .detect import DETECTORS
from .paste import FaceAligner
from .recipes import RECIPES


def _benchmark(size: int, recipe: str, aligned_size: Optional[int], repeats: int, detector: str) -> dict:
    """Detection + alignment + paste-back time on scikit-image's astronaut (512 x 512)."""
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut())
    aligner = FaceAligner(size, recipe, aligned_size, detector, min_face_fraction=0.0)  # time any model size
    face = aligner.align(photo)[0]  # warm up (loads the dlib models)
    face.paste(face.crop)
    times = {"detect": [], "align": [], "paste": [], "total": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        faces = aligner.detector.detect(photo)
        t1 = time.perf_counter()
        face = aligner.align_landmarks(photo, faces[0].landmarks, box=faces[0].box)
        t2 = time.perf_counter()
        face.paste(face.crop)
        t3 = time.perf_counter()
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            times[k].append(v)
    return {k: float(np.median(v)) for k, v in times.items()}


def _key(path: Path) -> str:
    return str(path.resolve())


def _plan_names(photos: Sequence[Path], out: Path) -> dict[str, str]:
    """The base name of each photo's files (``<base>[_face<k>]_aligned.png``, ``<base>_pasted.png``),
    decided up front: photos that share a file name get their folder's name or a number in front
    (one notice line), and no output takes the name of a photo inside ``out``."""
    from editing.cli import NamePlan, photo_name_candidates

    inside = []
    if out.is_dir():
        inside = [p.name for p in photos if p.resolve().parent == out.resolve()]
    plan = NamePlan(inside)
    names: dict[str, str] = {}
    for p in photos:
        if _key(p) in names:
            continue
        for i, base in enumerate(photo_name_candidates(p)):
            if plan.free(base, "_aligned.png") and plan.free(base, "_pasted.png"):
                plan.claim(_key(p), "_aligned.png", [base])
                plan.claim(_key(p), "_pasted.png", [base])
                if i:
                    plan.renamed.append((str(p), f"{base}_aligned.png"))
                names[_key(p)] = base
                break
    line = plan.notice("photos share file names, so their files are named apart")
    if line:
        print(line, file=sys.stderr)
    return names


def _parser() -> argparse.ArgumentParser:
    from utils.cli import ArgumentParser

    p = ArgumentParser(prog="python -m editing.align",
          description="Detect faces in photos and write them aligned like a model's training data.")
    p.add_argument("photos", nargs="*", help="photo files")
    p.add_argument("--out", default="output/aligned", help="output folder (default output/aligned)")
    p.add_argument("--size", type=int, default=256, help="model size in px (default 256)")
    p.add_argument("--align_recipe", default="ffhq", choices=RECIPES, help="alignment recipe (default ffhq)")
    p.add_argument("--aligned_size", type=int, default=None,
                   help="recipe render size before the loader's resize (default: --size)")
    p.add_argument("--detector", default="hog", choices=DETECTORS, help="dlib face detector (default hog)")
    p.add_argument("--all_faces", action="store_true", help="every face, not only the largest")
    p.add_argument("--paste_check", action="store_true",
                   help="also write <stem>_pasted.png: the unedited crop pasted back into the photo")
    p.add_argument("--benchmark", action="store_true",
                   help="time detection + alignment + paste-back on scikit-image's 512-px astronaut photo")
    p.add_argument("--repeats", type=int, default=10, help="benchmark repetitions (median reported)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from utils.cli import main_guard

    @main_guard
    def run() -> int:
        args = _parser().parse_args(argv)
        if args.benchmark:
            t = _benchmark(args.size, args.align_recipe, args.aligned_size, max(1, args.repeats), args.detector)
            print(f"512x512 photo, {args.size}-px crop, recipe {args.align_recipe}, aligned at "
                  f"{args.aligned_size or args.size} px, {args.detector} detector, torch threads "
                  f"{torch.get_num_threads()}: detect {t['detect'] * 1e3:.0f} ms + align {t['align'] * 1e3:.0f} ms "
                  f"+ paste {t['paste'] * 1e3:.0f} ms = {t['total'] * 1e3:.0f} ms per photo (median of {args.repeats})")
            return 0
        if not args.photos:
            raise UserError("give photo files (or --benchmark)")
        aligner = FaceAligner(args.size, args.align_recipe, args.aligned_size, args.detector)
        out = Path(args.out)
        names = _plan_names([Path(p) for p in args.photos], out)
        done, failed = 0, 0
        for path in args.photos:
            try:
                faces = aligner.align(path, all_faces=args.all_faces)
            except AlignError as e:
                print(f"error: {e}", file=sys.stderr)
                failed += 1
                continue
            if aligner.rejected_notice():
                print(aligner.rejected_notice(), file=sys.stderr)
            out.mkdir(parents=True, exist_ok=True)
            stem = names[_key(Path(path))]
            pasted = None
            for f in faces:
                tag = f"_face{f.index}" if args.all_faces else ""
                Image.fromarray(f.image).save(out / f"{stem}{tag}_aligned.png")
                if args.paste_check:
                    pasted = f.paste(f.crop, into=pasted)
            if pasted is not None:
                Image.fromarray(pasted).save(out / f"{stem}_pasted.png")
            done += 1
        print(f"aligned {done} of {len(args.photos)} photo(s) into {out}"
              + (f"; {failed} failed" if failed else ""), file=sys.stderr)
        return 2 if failed else 0

    return run()
