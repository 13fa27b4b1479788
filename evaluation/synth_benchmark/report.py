"""The benchmark's Markdown report (``report.md``) from its results (``results.json``)."""
from __future__ import annotations

from typing import Optional

from ..discriminators import is_paper_ifg_label
from .runner import FIT_FACES, FIT_SCALES, FIT_SUCCESS
from .targets import _fmt, editing_targets_met


def ifg_status(discriminator: Optional[str], why_none: str) -> dict:
    """``results["setup"]["ifg"]``: whether IFG was scored and, when not, why (``why_none``)."""
    return {"scored": bool(discriminator), "reason": None if discriminator else why_none}


#: Results written before the runner recorded its discriminator's kind.
UNRECORDED_IFG = "IFG (discriminator kind not recorded, maybe not the paper's)"


def ifg_label_of(r: dict) -> Optional[str]:
    """The label of the run's IFG values (``results["ifg_discriminator"]``), None when not scored."""
    if not r["setup"].get("discriminator"):
        return None
    return (r.get("ifg_discriminator") or {}).get("label") or UNRECORDED_IFG


def _ifg_text(s: dict, label: Optional[str]) -> str:
    """The report's sentence on IFG (it follows the classifier's)."""
    if s.get("discriminator"):
        return f"; IFG from {s['discriminator']}: **{label}**."
    why = (s.get("ifg") or {}).get("reason")
    return (". **IFG was not scored because there is no discriminator**" + (f" ({why})" if why else "")
            + "; the IFG columns show -.")


def classifier_text(s: dict) -> str:
    """The report's words on the classifier that scored the run (``setup["classifier_info"]``): how it
    was trained and its validation accuracy; empty for results without that record."""
    c = s.get("classifier_info")
    if not c:
        return ""
    st, parts = c.get("settings"), []
    if st:
        parts.append(f"trained on {st['num']} SynthFaces faces (ids {st['first_id']}..{st['first_id'] + st['num'] - 1}, "
                     f"data seed {st['data_seed']}) for {st['epochs']} epoch(s) at {st['size']} px, settings key "
                     f"{c.get('key')}")
    elif c.get("train_ids"):
        a, b = c["train_ids"]
        parts.append(f"trained on SynthFaces faces {a}..{b - 1} for {c.get('epochs')} epoch(s); its other settings "
                     "are not recorded")
    else:
        parts.append("how it was trained is not recorded")
    acc = c.get("mean_val_accuracy")
    parts.append(f"mean validation accuracy {acc:.3f}" if acc is not None else "validation accuracy not recorded")
    need = c.get("min_accuracy")
    if need is not None:
        parts.append(f"at least {need:g} required" if need > 0 else
                     "accepted without an accuracy check (--min_classifier_accuracy 0)")
    return " (" + "; ".join(parts) + ")"


def _scale_text(s: dict) -> str:
    scale = s.get("strength_scale", 1)
    if scale is None and s.get("strength_mode") == "calibrated" and s.get("arch"):
        return (f"class gap x the smallest of {', '.join(f'{v:g}' for v in FIT_SCALES)} at which the classifier reads "
                f"the attribute on {FIT_SUCCESS:.0%} of {FIT_FACES} validation faces' edits, per edit")
    return f"x {1 if scale is None else scale:g}"


def to_markdown(r: dict) -> str:
    """The report: setup, reconstruction, transfer, attributes, single eye, targets."""
    s = r["setup"]
    label = ifg_label_of(r)
    ifg_head = "IFG" if label is None or is_paper_ifg_label(label) else "IFG (not the paper's)"
    subject = f"Model `{s['arch']}`" if s.get("arch") else f"Reference edit maker `{s.get('reference')}`"
    lines = [f"# SynthFaces benchmark: {s['checkpoint'] or s.get('reference')}", "",
             f"{subject} at {s['size']} px"
             + (f" after {s['iteration']} training iterations" if s.get("iteration") else "")
             + f"; {s['num']} held-out SynthFaces faces (seed {s['data_seed']}, "
             f"ids {s['first_id']}..{s['last_id']}, test split). Errors are MSE on [-1, 1]; box errors use the "
             f"metric boxes at {s['size']} px; locality is MSE_irr over the change inside the edited boxes. "
             f"Attribute labels of edits come from the classifier `{s['classifier']}`{classifier_text(s)}"
             f"{_ifg_text(s, label)} "
             f"Strengths: {s.get('strength_mode')}"
             f" ({_scale_text(s)}); boundary recipe: {s.get('recipe', 'release')}.", ""]
    rec = r["reconstruction"]
    c = r["classifier"]
    lines += ["## Reconstruction", "", "| MSE | PSNR (dB) | SSIM |", "|---|---|---|",
              f"| {rec['mse']:.4f} | {rec['psnr']:.2f} | {rec['ssim']:.4f} |", "",
              f"Classifier accuracy against the true labels: {c['mean_accuracy_real']:.1%} on the renders, "
              f"{c['mean_accuracy_reconstruction']:.1%} on their reconstructions (mean over attributes).", ""]
    lines += ["## Component transfer", "",
              "Face k takes the component of face k+1. In-box / out-of-box error: against the ground truth "
              "(target rendered with the reference's component). Attr. agreement: classifier labels of the "
              "component's attributes vs. the ground truth's labels.", "",
              "| component | method | in-box error | out-of-box error | MSE_irr | locality | attr. agreement | "
              f"{ifg_head} |",
              "|---|---|---|---|---|---|---|---|"]
    labels = {"model": "edit", "no_edit": "no edit", "paste": "paste (recon.)", "paste_real": "paste (real)"}
    for comp, row in r["transfer"].items():
        for m, lab in labels.items():
            v = row[m]
            lines.append(f"| {comp} | {lab} | {_fmt(v['in_box_error'])} | {_fmt(v['out_box_error'])} | "
                         f"{_fmt(v['mse_irr'])} | {_fmt(v['locality'], '.3f')} | {_fmt(v['attr_agreement'], '.1%')} | "
                         f"{_fmt(v['ifg'], '.3f')} |")
    lines += ["", "## Attribute manipulation (official presets)", "",
              "Faces lacking the target label only. Success: classifier reads the attribute on the edit, counted "
              "on the faces whose reconstruction it reads right (readable); (rendered GT): the same reading of the "
              "edit maker's rendering of the ground truth. Error vs. GT: against the face with the attribute "
              "flipped (no edit: the reconstruction against it); vs. rendered GT: against the edit maker's "
              "rendering of it. Others kept: share of (face, other attribute) labels the edit leaves unchanged.", "",
              "| preset | attribute | components | strength | faces | readable | success | (no edit) | (rendered GT) | "
              f"others kept | error vs. GT | (no edit) | vs. rendered GT | (no edit) | locality | {ifg_head} |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, row in r["attributes"].items():
        if "success" not in row:
            lines.append(f"| {key} | {row['attribute']} | {row['components']} | - | 0 | " + "- | " * 10 + "- |")
            continue
        lines.append(f"| {key} | {row['attribute']} | {row['components']} | {row['strength']:g} | {row['num']} | "
                     f"{row['readable']:.0%} | {row['success']:.1%} | {row['success_no_edit']:.1%} | "
                     f"{_fmt(row.get('success_rendered_gt'), '.1%')} | {row['others_kept']:.1%} | {_fmt(row['error_gt'])} | {_fmt(row['error_gt_no_edit'])} | "
                     f"{_fmt(row['error_rgt'])} | {_fmt(row['error_rgt_no_edit'])} | "
                     f"{_fmt(row['locality'], '.3f')} | {_fmt(row['ifg'], '.3f')} |")
    lines += ["", "## Single-eye editing", "", "Faces with both eyes open; only one eye's embedding moves.", "",
              "| attribute | component | strength | faces | readable | success | (rendered GT) | other eye kept | "
              f"others kept | error vs. GT | (no edit) | vs. rendered GT | (no edit) | locality | {ifg_head} |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, row in r["single_eye"].items():
        if "success" not in row:
            lines.append(f"| {key} | {row['component']} | - | 0 | " + "- | " * 10 + "- |")
            continue
        lines.append(f"| {key} | {row['component']} | {row['strength']:g} | {row['num']} | {row['readable']:.0%} | "
                     f"{row['success']:.1%} | {_fmt(row.get('success_rendered_gt'), '.1%')} | {row['other_kept']:.1%} | {row['others_kept']:.1%} | "
                     f"{_fmt(row['error_gt'])} | {_fmt(row['error_gt_no_edit'])} | {_fmt(row['error_rgt'])} | "
                     f"{_fmt(row['error_rgt_no_edit'])} | {_fmt(row['locality'], '.3f')} | {_fmt(row['ifg'], '.3f')} |")
    met = sum(t["met"] for t in r["targets"])
    em, et = editing_targets_met(r["targets"])
    lines += ["", f"## Paper targets ({met} of {len(r['targets'])} met; editing {em} of {et})", "",
              "An editing target counts only while reconstruction meets its own target.", "",
              "| target | value | threshold | met |", "|---|---|---|---|"]
    for t in r["targets"]:
        verdict = "met" if t["met"] else ("not met (reconstruction below target)" if t["condition"] else "not met")
        lines.append(f"| {t['target']} | {t['value']} | {t['threshold']} | {verdict} |")
    if r.get("grids"):
        lines += ["", "## Image grids", ""] + [f"- `{g}`" for g in r["grids"]]
    lines += ["", f"Total time {r['seconds']:.0f} s.", ""]
    return "\n".join(lines)

