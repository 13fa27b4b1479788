"""The command ``python -m evaluation.synth_benchmark``: arguments, the attribute classifier it
needs (read, or trained and stored once), the run and its outputs (``results.json``,
``report.md``, grids)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Optional

import torch

from data_loader.synthfaces.dataset import DEFAULT_SPLITS, split_ranges
from editing import RECIPES, Editor, SynthFacesLabels, default_boundary_dir
from model.checkpoint import build_models, has_discriminator, read_checkpoint
from utils.cli import TRUST_CODE_HELP, ArgumentParser, main_guard
from utils.device import resolve_device, set_threads
from utils.errors import UserError

from ..attr_classifier import (MIN_ACCURACY, ClassifierError, check_for_scoring, default_classifier_path,
                              describe_classifier, legacy_classifier_path, load_classifier, save_classifier,
                              train_classifier, training_settings)
from ..discriminators import load_discriminator
from .edits import REFERENCES, _log, held_out_ids, synthfaces_setup
from .report import ifg_status, to_markdown
from .runner import FIT_FACES, FIT_SCALES, FIT_SUCCESS, STRENGTH_MODES, Benchmark


def get_classifier(path: Optional[str], size: int, device, train_faces: int = 8000, train_epochs: int = 10,
                   log: Callable[[str], None] = _log, min_accuracy: float = MIN_ACCURACY):
    """The classifier that scores the edits: the file ``path``, or the cache file of the
    classifier trained with these settings (:func:`default_classifier_path`: keyed by every
    setting), trained and stored there when missing. A cache file that does not record the
    settings its name stands for is refused; the older cache keyed by size alone is never read.
    Refused (one line) unless its recorded mean validation accuracy is at least ``min_accuracy``
    (:func:`check_for_scoring`; 0 accepts any)."""
    if path:
        clf = load_classifier(path, device)
    else:
        if train_faces < 2 or train_epochs < 1:
            raise UserError("--classifier_faces must be at least 2 and --classifier_epochs at least 1")
        settings = training_settings(size, num=train_faces, epochs=train_epochs)
        cached = default_classifier_path(size, settings)
        if cached.is_file():
            clf = load_classifier(cached, device)
            if clf.info.get("settings") != settings:
                raise ClassifierError(f"{cached} does not record the training settings its name stands for; delete "
                                      "it (it is a cache) to train it again, or pass --classifier PATH")
        else:
            legacy = legacy_classifier_path(size)
            if legacy.is_file():
                log(f"notice: not using {legacy}: an older cache that does not record how it was trained")
            log(f"no attribute classifier at {cached}: training one ({train_faces} faces, {train_epochs} epochs)")
            trained = train_classifier(size=size, num=train_faces, epochs=train_epochs, log=log)
            save_classifier(trained, cached, trained.info)
            log(f"stored the attribute classifier in {cached}")
            clf = load_classifier(cached, device)
    clf.min_accuracy = float(min_accuracy)
    check_for_scoring(clf, min_accuracy)
    return clf


def _classifier_setup(clf) -> dict:
    """``results["setup"]["classifier_info"]``: which classifier scored the run."""
    d = describe_classifier(clf)
    d["min_accuracy"] = getattr(clf, "min_accuracy", None)
    return d


def build_parser():
    p = ArgumentParser(prog="python -m evaluation.synth_benchmark",  # not __main__.py
                       description="IA-FaceS editing against SynthFaces ground truth (held-out faces).")
    p.add_argument("--resume", metavar="CKPT", help="checkpoint (own format or released)")
    p.add_argument("--reference", choices=REFERENCES, default=None,
                   help="score a reference edit maker instead of a model: 'oracle' returns the exact ground truth "
                   "(meets every target), 'no_edit' returns the input (meets no editing target); needs --size")
    p.add_argument("--size", type=int, default=64, help="image size for --reference (default 64)")
    p.add_argument("--num", type=int, default=200, help="held-out faces (default 200)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default output/<ckpt stem>/synth_benchmark)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch_size", type=int, default=16, help="images per forward pass (default 16)")
    p.add_argument("--classifier", default=None, metavar="PATH", help="attribute classifier (default: the cache "
                   "file of the classifier trained with --classifier_faces and --classifier_epochs at the model's size, "
                   "saved/classifiers/synthfaces_<size>_<faces>f_<epochs>e_d0_<settings key>.pt, trained and stored "
                   "there when missing)")
    p.add_argument("--classifier_faces", type=int, default=8000,
                   help="SynthFaces faces the classifier is trained on (default 8000)")
    p.add_argument("--classifier_epochs", type=int, default=10, help="epochs of the classifier's training (default 10)")
    p.add_argument("--min_classifier_accuracy", type=float, default=MIN_ACCURACY,
                   help=f"refuse a classifier whose recorded mean validation accuracy is lower (default {MIN_ACCURACY:g}; "
                   "the default training reaches about 0.83 at 16 px, 0.89 at 32 px and 0.93 at 64 px; 0 accepts any "
                   "classifier, e.g. for a "
                   "smoke test)")
    p.add_argument("--num_label_faces", type=int, default=2000, help="SynthFaces training faces for the "
                   "attribute boundaries (default 2000)")
    p.add_argument("--boundary_dir", default=None, metavar="DIR", help="where boundaries are stored (default: "
                   "beside the checkpoint)")
    p.add_argument("--discriminator", default=None, metavar="PATH", help="discriminator for IFG (default: the "
                   "checkpoint's own, when it holds one)")
    p.add_argument("--trust_code", action="store_true", help=TRUST_CODE_HELP)
    p.add_argument("--eye_strength", type=float, default=4.0, help="strength of the single-eye edits (default 4)")
    p.add_argument("--strength_scale", type=float, default=None,
                   help="multiply the strengths by this (default: with calibrated strengths, fitted per edit on "
                   f"{FIT_FACES} validation faces, never the test faces: the smallest of "
                   f"{', '.join(f'{v:g}' for v in FIT_SCALES)} at which the classifier reads the attribute on "
                   f"{FIT_SUCCESS * 100:.0f}%% of the edits; with official strengths 1)")  # %%: argparse's escape
    p.add_argument("--strength_mode", choices=STRENGTH_MODES, default="calibrated",
                   help="calibrated (default): move each edited component by its boundary's class gap (the distance "
                   "between the mean projections of the label faces with and without the attribute); official: the "
                   "presets' strengths and --eye_strength, tuned to the released models' embeddings")
    p.add_argument("--recipe", choices=RECIPES, default=None,
                   help="boundary recipe: release (the release's SVM), standardized, mean (difference of the class "
                   "means) or conditional (the attribute's effect with the other labels fixed); default: the "
                   "checkpoint's editing.boundary_recipe (release where the config names none); see docs/editing.md")
    p.add_argument("--grid_rows", type=int, default=8, help="faces per image grid (0: no grids; default 8)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p


def run_from_args(args, log: Callable[[str], None] = _log) -> dict:
    set_threads(args.threads)
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    for flag in ("eye_strength", "strength_scale"):
        if getattr(args, flag) is not None and not math.isfinite(getattr(args, flag)):
            raise UserError(f"--{flag} must be a finite number, got {getattr(args, flag)}")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a file, not a folder")
    if (args.resume is None) == (args.reference is None):
        raise UserError("give --resume CKPT (a model) or --reference oracle|no_edit")
    if not (math.isfinite(args.min_classifier_accuracy) and 0 <= args.min_classifier_accuracy <= 1):
        raise UserError(f"--min_classifier_accuracy must be between 0 and 1, got {args.min_classifier_accuracy}")
    device = resolve_device(args.device)
    if args.reference:
        return _run_reference(args, device, log)
    ckpt = Path(args.resume)
    if not ckpt.is_file():
        raise UserError(f"checkpoint not found: {ckpt}")
    payload, source = read_checkpoint(ckpt)
    models = build_models(payload, source, ckpt, device,
                          discriminator=args.discriminator is None and has_discriminator(payload, source))
    del payload
    D, d_name = models.discriminator, ("the checkpoint's discriminator" if models.discriminator is not None else None)
    if args.discriminator:
        D, d_name = load_discriminator(args.discriminator, device, args.trust_code), str(args.discriminator)
    # Without one (e.g. a checkpoint trained without the adversarial loss), the report says so.
    ifg = ifg_status(d_name, "the checkpoint holds no discriminator and no --discriminator was given")
    editor = Editor(models.encoder, models.generator, models.device, args.batch_size, str(ckpt), models.config)
    setup = synthfaces_setup(models.config, log)
    clf = get_classifier(args.classifier, editor.size, device, args.classifier_faces, args.classifier_epochs, log,
                         args.min_classifier_accuracy)
    _check_classifier_overlap(clf, setup, args.num, log)
    held_out_ids(setup, args.num)  # fail early on a --num the test split cannot serve
    label_source = SynthFacesLabels(editor.size, args.num_label_faces, setup["seed"], splits=setup["splits"])
    out = Path(args.out) if args.out else Path("output") / ckpt.stem / "synth_benchmark"
    bench = Benchmark(editor, clf, out, args.num, label_source,
                      Path(args.boundary_dir) if args.boundary_dir else default_boundary_dir(ckpt), D,
                      args.eye_strength, args.strength_scale, args.grid_rows, setup, log, args.strength_mode,
                      recipe=args.recipe)
    bench.results["setup"] = {
        "checkpoint": str(ckpt), "arch": models.model_config.arch, "iteration": models.iteration,
        "size": editor.size, "num": args.num, "classifier": getattr(clf, "path", None),
        "classifier_info": _classifier_setup(clf), "discriminator": d_name,
        "ifg": ifg, "num_label_faces": args.num_label_faces}
    return _finish(bench, args, setup, device, out, log)


def _run_reference(args, device, log) -> dict:
    setup = {"seed": 0, "splits": dict(DEFAULT_SPLITS), "trained_on_synthfaces": False}
    clf = get_classifier(args.classifier, args.size, device, args.classifier_faces, args.classifier_epochs, log,
                         args.min_classifier_accuracy)
    out = Path(args.out) if args.out else Path("output") / f"reference_{args.reference}" / "synth_benchmark"
    bench = Benchmark(None, clf, out, args.num, grid_rows=args.grid_rows, setup=setup, log=log,
                      strength_mode=args.strength_mode, reference=args.reference, size=args.size)
    bench.results["setup"] = {"checkpoint": None, "reference": args.reference, "arch": None, "iteration": None,
                              "size": args.size, "num": args.num, "classifier": getattr(clf, "path", None),
                              "classifier_info": _classifier_setup(clf), "discriminator": None,
                              "ifg": ifg_status(None, "a reference edit maker is scored without a discriminator")}
    return _finish(bench, args, setup, device, out, log)


def _finish(bench: Benchmark, args, setup: dict, device, out: Path, log) -> dict:
    bench.results["setup"].update({
        "data_seed": setup["seed"], "splits": setup["splits"], "first_id": bench.ids[0], "last_id": bench.ids[-1],
        "trained_on_synthfaces": setup["trained_on_synthfaces"], "eye_strength": args.eye_strength,
        "strength_scale": args.strength_scale, "strength_mode": args.strength_mode, "recipe": bench.recipe,
        "device": str(device)})
    results = bench.run()
    results = {"setup": results.pop("setup"), **results}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    md = to_markdown(results)
    (out / "report.md").write_text(md)
    print(md)
    log(f"wrote {out / 'results.json'}, {out / 'report.md'} and {len(bench.grids)} grids")
    return results


def _check_classifier_overlap(clf, setup: dict, num: int, log) -> None:
    """Notice when the classifier was trained on faces of the benchmark's test range."""
    data = (getattr(clf, "info", {}) or {}).get("data") or {}
    ids = data.get("train_ids")
    if not ids or int(data.get("seed", -1)) != setup["seed"]:
        return
    test = split_ranges(**setup["splits"])["test"]
    lo, hi = test.start, test.start + min(num, len(test))
    if ids[0] < hi and lo < ids[1]:
        log(f"notice: the attribute classifier was trained on SynthFaces faces {ids[0]}..{ids[1] - 1}, which overlap "
            f"the benchmark's faces {lo}..{hi - 1}")


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    run_from_args(args)
    return 0
