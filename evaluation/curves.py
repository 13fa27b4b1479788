"""Accuracy/locality curves, the release's ``plot_curves``: attribute accuracy against MSE_irr and
against the IFG drop over edit steps of increasing strength.

    python -m evaluation.curves --published ../shared/reference/official_eval_lists/metrics/inter-curve-score \
        [--run DIR [--run_label NAME]] [--attr beard bushy] [--out curves.png]

Curve data, one folder per method and attribute (the release's layout)::

    <root>/<method>/<attr>/acc.txt           one line per step: the classifier's count out of N
    <root>/<method>/<attr>/mse_score.txt     one line per step: MSE_irr
    <root>/<method>/<attr>/d_score_drop.txt  one line per step: IFG, mean D(edit) - D(reconstruction)
    <root>/<method>/<attr>/ifg_label.txt     (a run's own data) which discriminator scored the IFG

The published folder holds ``our_data`` (IA-FaceS) and ``stylegan2_data`` (StyleGAN2 latent
editing) for ``beard`` and ``bushy`` (1000 faces). ``acc.txt`` counts the faces the attribute
classifier gives its label: for ``beard`` that classifier is CelebA's ``No_Beard``, so the accuracy
of *adding* a beard is ``1 - count / N`` (last published step: 13 -> 0.987); for the others it is
``count / N`` (bushy: 994 -> 0.994); :data:`COUNTED_LABEL_IS_TARGET` holds the rule. ``--run``
points to a run's own data in the same layout (``DIR/<attr>/...`` or ``DIR/<method>/<attr>/...``),
written with :func:`write_curve_data`; it is drawn beside the published curves. The published IFG
is the paper's (the release's ``d_score.py``); a run's IFG carries the label of its discriminator
(``ifg_label.txt``, :func:`evaluation.discriminators.ifg_label`), in the printed summary and the
figure's legend.

A run's own data (``--compute``): a preset's edit at ``--steps`` strengths ``alpha * k / steps``
(k = 1..steps) on the given faces; per step the classifier's count of the label the release counts
(the preset's label, e.g. ``No_Beard`` for the beard edit), MSE_irr between the reconstruction and the
edit (the preset's component boxes zeroed; images above 256 px resized to 256, as the release) and
IFG (in-memory images scored one at a time by the checkpoint's own discriminator, or
``--discriminator``; never the paper's file pipeline, and labelled so)::

    python -m evaluation.curves --compute --resume CKPT --data_path faces/ --attr beard bushy \
        --classifier saved/classifiers/synthfaces_64.pt --run output/curves_run
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from utils.cli import TRUST_CODE_HELP, ArgumentParser, main_guard
from utils.errors import UserError

#: Published methods: folder -> label.
PUBLISHED = {"our_data": "IA-FaceS (published)", "stylegan2_data": "StyleGAN2 (published)"}
#: Whether the label counted in acc.txt is the edit's target (True) or its absence (False: the
#: count is of faces still *without* the attribute, e.g. ``No_Beard`` for the beard edit).
COUNTED_LABEL_IS_TARGET = {"beard": False}
DEFAULT_NUM_FACES = 1000
FILES = ("acc.txt", "mse_score.txt", "d_score_drop.txt")
IFG_LABEL_FILE = "ifg_label.txt"
NO_IFG = "IFG not scored (no discriminator)"
#: A run's curve data without ``ifg_label.txt`` (written before labels were recorded).
UNRECORDED_IFG = "IFG (discriminator not recorded, maybe not the paper's)"


@dataclass
class Curve:
    """One method's curve for one attribute: per step accuracy (0..1), MSE_irr and IFG."""
    label: str
    attribute: str
    accuracy: np.ndarray
    mse_irr: np.ndarray
    ifg: np.ndarray
    ifg_label: str = UNRECORDED_IFG

    @property
    def steps(self) -> int:
        return len(self.accuracy)


def _read_column(path: Path) -> np.ndarray:
    try:
        return np.array([float(line.split()[0]) for line in path.read_text().splitlines() if line.strip()])
    except (OSError, ValueError, IndexError) as e:
        raise UserError(f"cannot read curve data {path}: {e.__class__.__name__}") from None


def accuracy_from_counts(counts: Sequence[float], attribute: str, num_faces: int = DEFAULT_NUM_FACES) -> np.ndarray:
    """Counts out of ``num_faces`` -> accuracy of the edit (see :data:`COUNTED_LABEL_IS_TARGET`)."""
    share = np.asarray(counts, np.float64) / float(num_faces)
    return share if COUNTED_LABEL_IS_TARGET.get(attribute, True) else 1.0 - share


def read_curve(folder, attribute: str, label: str, num_faces: int = DEFAULT_NUM_FACES,
               ifg_label: str = UNRECORDED_IFG) -> Curve:
    """The curve in ``folder`` (which holds acc.txt, mse_score.txt, d_score_drop.txt); its IFG label
    from ``ifg_label.txt`` when there is one, else ``ifg_label``."""
    folder = Path(folder)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise UserError(f"{folder} lacks curve data {', '.join(missing)} (expected {', '.join(FILES)})")
    acc, mse, ifg = (_read_column(folder / f) for f in FILES)
    n = min(len(acc), len(mse), len(ifg))
    if n == 0:
        raise UserError(f"{folder}: empty curve data")
    label_file = folder / IFG_LABEL_FILE
    if label_file.is_file():
        ifg_label = label_file.read_text().strip() or ifg_label
    return Curve(label, attribute, accuracy_from_counts(acc[:n], attribute, num_faces), mse[:n], ifg[:n], ifg_label)


def write_curve_data(folder, counts: Sequence[float], mse_irr: Sequence[float], ifg: Sequence[float],
                     ifg_label: str = UNRECORDED_IFG) -> Path:
    """Write a run's curve in the release's layout (``folder`` = ``<root>/<attr>``): counts of the
    classifier label per step (see :data:`COUNTED_LABEL_IS_TARGET`), MSE_irr and IFG per step, and
    which discriminator scored the IFG (``ifg_label.txt``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "acc.txt").write_text("".join(f"{int(round(c))}\n" for c in counts))
    (folder / "mse_score.txt").write_text("".join(f"{v:.6f}\n" for v in mse_irr))
    (folder / "d_score_drop.txt").write_text("".join(f"{v:.6f}\n" for v in ifg))
    (folder / IFG_LABEL_FILE).write_text(ifg_label + "\n")
    return folder


def published_curves(root, attribute: str, num_faces: int = DEFAULT_NUM_FACES) -> list[Curve]:
    """The published curves of ``attribute`` under ``root`` (the inter-curve-score folder)."""
    from .discriminators import IFG_LABELS  # torch only when needed

    root = Path(root)
    out = [read_curve(root / method / attribute, attribute, label, num_faces, IFG_LABELS["release"])
           for method, label in PUBLISHED.items() if (root / method / attribute).is_dir()]
    if not out:
        raise UserError(f"no published curve for '{attribute}' under {root} (expected "
                        f"{'/'.join(PUBLISHED)}/{attribute}/)")
    return out


def run_curve(root, attribute: str, label: str, num_faces: int = DEFAULT_NUM_FACES) -> Optional[Curve]:
    """A run's own curve: ``root/<attr>/`` or the one ``root/<method>/<attr>/``; None if absent."""
    root = Path(root)
    if (root / attribute / FILES[0]).is_file():
        return read_curve(root / attribute, attribute, label, num_faces)
    found = sorted(p.parent for p in root.glob(f"*/{attribute}/{FILES[0]}"))
    return read_curve(found[0], attribute, label, num_faces) if found else None


def plot_curves(curves_by_attr: dict[str, list[Curve]], out) -> Path:
    """One row per attribute: accuracy against MSE_irr (left) and against the IFG drop (right),
    one line per method, a marker per edit step (matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .discriminators import is_paper_ifg_label

    rows = len(curves_by_attr)
    fig, axes = plt.subplots(rows, 2, figsize=(9, 3.4 * rows), squeeze=False)
    styles = ["o-", "s--", "^-.", "d:", "v-"]
    for r, (attr, curves) in enumerate(curves_by_attr.items()):
        for k, c in enumerate(curves):
            axes[r, 0].plot(c.mse_irr, c.accuracy, styles[k % len(styles)], label=c.label, markersize=4)
            ifg_name = c.label if is_paper_ifg_label(c.ifg_label) else f"{c.label}: {c.ifg_label}"
            axes[r, 1].plot(c.ifg, c.accuracy, styles[k % len(styles)], label=ifg_name, markersize=4)
        axes[r, 0].set_xlabel("MSE_irr (lower: edit stays local)")
        axes[r, 1].set_xlabel("IFG: D(edit) - D(reconstruction)")
        axes[r, 1].invert_xaxis()  # a larger drop to the right
        for ax in axes[r]:
            ax.set_ylabel(f"{attr} accuracy")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
        axes[r, 0].legend(fontsize=8, loc="best")
        axes[r, 1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def step_strengths(strength: float, steps: int) -> list[float]:
    """The edit strengths of a curve: ``strength * k / steps`` for k = 1..steps (the last is ``strength``)."""
    if steps < 1:
        raise UserError("--steps must be positive")
    return [strength * k / steps for k in range(1, steps + 1)]


def compute_curve(editor, images, boundary, preset, classifier, discriminator=None, steps: int = 10,
                  max_strength: Optional[float] = None) -> tuple[list[int], list[float], list[float]]:
    """A run's curve for ``preset`` (an ``editing.Preset``) on ``images`` [N, 3, S, S]:
    per step k = 1..steps the edit ``components += sign * alpha * k / steps * n`` on the preset's components,
    then (classifier count of the preset's label, MSE_irr at <= 256 px, IFG or NaN without a discriminator;
    label it with ``evaluation.discriminators.ifg_label(discriminator)``)."""
    import torch

    from evaluation.metrics import ifg, mse_irr

    alpha = preset.strength if max_strength is None else float(max_strength)
    content, components = editor.encode(images)
    recon = editor.decode(content, components)
    names = [a.lower() for a in classifier.attribute_names]
    if preset.attribute.lower() not in names:
        raise UserError(f"the classifier has no '{preset.attribute}' label (it has {', '.join(classifier.attribute_names)})")
    col = names.index(preset.attribute.lower())
    counts, irr, gaps = [], [], []
    for strength in step_strengths(alpha, steps):
        s = preset.label_strength(strength)
        edited = editor.decode(content, editor.apply_direction(components, boundary, s, preset.components))
        counts.append(int(torch.as_tensor(classifier.predict(edited)).bool()[:, col].sum()))
        irr.append(float(mse_irr(recon, edited, preset.components)))
        gaps.append(float(ifg(discriminator, edited, recon)) if discriminator is not None else float("nan"))
    return counts, irr, gaps


def _compute(args) -> None:
    from editing import PRESETS, Editor, get_boundary
    from editing.cli import ImageLoader, collect_inputs
    from model.checkpoint import load_models

    from .attr_classifier import load_classifier
    from .discriminators import ifg_label, load_discriminator

    if not args.resume or not args.data_path or not args.classifier or not args.run:
        raise UserError("--compute needs --resume CKPT, --data_path INPUT, --classifier PATH and --run DIR")
    editor = Editor.from_checkpoint(args.resume, args.device)
    paths = collect_inputs(args.data_path, args.img_dir, "--data_path")
    images = ImageLoader(editor.size, notice=lambda m: None).batch(paths)
    clf = load_classifier(args.classifier, editor.device)
    if args.discriminator:
        D = load_discriminator(args.discriminator, editor.device, args.trust_code)
    else:
        try:
            D = load_models(args.resume, editor.device, discriminator=True).discriminator
        except UserError:
            D = None
            print("notice: the checkpoint holds no discriminator and no --discriminator was given: IFG is NaN",
                  file=sys.stderr)
    for attr in args.attr:
        preset = PRESETS.get(attr)
        if preset is None:
            raise UserError(f"--compute takes presets ({', '.join(PRESETS)}), got '{attr}'")
        boundary = get_boundary(editor, preset.attribute)
        counts, irr, gaps = compute_curve(editor, images, boundary, preset, clf, D, args.steps)
        write_curve_data(Path(args.run) / attr, counts, irr, gaps, ifg_label(D) or NO_IFG)
    print(f"wrote curve data of {len(paths)} faces to {args.run}", file=sys.stderr)


def build_parser():
    p = ArgumentParser(description="Accuracy against MSE_irr and IFG over edit steps: published curves beside a run's.")
    p.add_argument("--published", default=None, metavar="DIR",
                   help="the release's inter-curve-score folder (our_data/, stylegan2_data/)")
    p.add_argument("--run", default=None, metavar="DIR", help="a run's own curve data (DIR/<attr>/acc.txt, ...)")
    p.add_argument("--run_label", default="this run", help="legend label of --run (default 'this run')")
    p.add_argument("--attr", nargs="+", default=["beard", "bushy"], help="attributes (default: beard bushy)")
    p.add_argument("--num_faces", type=int, default=DEFAULT_NUM_FACES,
                   help="faces per step that acc.txt counts out of (default 1000)")
    p.add_argument("--run_num_faces", type=int, default=None, help="the same for --run (default --num_faces)")
    p.add_argument("--out", default="curves.png", help="figure file (default curves.png)")
    c = p.add_argument_group("--compute: a run's own curve data, written to --run")
    c.add_argument("--compute", action="store_true", help="edit --data_path faces with the presets --attr at "
                   "--steps strengths and write the curve data to --run before plotting")
    c.add_argument("--resume", default=None, metavar="CKPT", help="checkpoint (own or released)")
    c.add_argument("--data_path", nargs="+", default=None, metavar="INPUT", help="faces: files, folders, lists")
    c.add_argument("--img_dir", default=None, help="folder that list entries resolve against")
    c.add_argument("--classifier", default=None, metavar="PATH", help="attribute classifier "
                   "(python -m evaluation.attr_classifier)")
    c.add_argument("--discriminator", default=None, metavar="PATH", help="for IFG (default: the checkpoint's D); "
                   "scored on in-memory images, so labelled not the paper's whatever the file")
    c.add_argument("--trust_code", action="store_true", help=TRUST_CODE_HELP)
    c.add_argument("--steps", type=int, default=10, help="edit steps (default 10)")
    c.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return p


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.compute:
        if args.steps < 1:
            raise UserError("--steps must be positive")
        _compute(args)
    if not args.published and not args.run:
        raise UserError("give --published DIR and/or --run DIR")
    if args.num_faces < 1 or (args.run_num_faces is not None and args.run_num_faces < 1):
        raise UserError("--num_faces must be positive")
    data: dict[str, list[Curve]] = {}
    for attr in args.attr:
        curves = published_curves(args.published, attr, args.num_faces) if args.published else []
        if args.run:
            own = run_curve(args.run, attr, args.run_label, args.run_num_faces or args.num_faces)
            if own is None:
                raise UserError(f"no curve data for '{attr}' in {args.run} (expected {attr}/acc.txt, ...)")
            curves.append(own)
        data[attr] = curves
    out = plot_curves(data, args.out)
    for attr, curves in data.items():
        for c in curves:
            print(f"{attr:8s} {c.label:24s} {c.steps} steps, last: accuracy {c.accuracy[-1]:.3f}, "
                  f"MSE_irr {c.mse_irr[-1]:.4f}, IFG {c.ifg[-1]:.3f}  [{c.ifg_label}]")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
