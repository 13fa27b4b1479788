"""One markdown table that compares several SynthFaces benchmark runs side by side.

    python -m evaluation.bench_table output/bench/iafaces/results.json output/bench/one_code/results.json \
        [--labels "IA-FaceS,one code"] [--out table.md]

Each row is one ``results.json`` of ``python -m evaluation.synth_benchmark``; the columns summarise
its report (means over the five transfer components, the seven presets and the two single-eye
edits) and count the editing targets met (reconstruction's own target is the PSNR column). Errors are MSE on [-1, 1].
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

from utils.cli import ArgumentParser, main_guard
from utils.errors import UserError

COLUMNS = ("model", "arch", "iterations", "PSNR (dB)", "SSIM", "transfer in-box error (no edit / paste)",
           "transfer locality", "attribute success (no edit)", "attribute error vs. rendered GT (no edit)", "others kept",
           "presets met", "single-eye success / other eye kept", "editing targets met")


def _mean(values) -> float:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else float("nan")


def summarize(r: dict) -> dict:
    """The table's numbers for one benchmark result (means over components / presets / eyes)."""
    tr = list(r["transfer"].values())
    attrs = [a for a in r["attributes"].values() if a.get("num") and "success" in a]
    eyes = [e for e in r["single_eye"].values() if e.get("num") and "success" in e]
    return {
        "arch": r["setup"].get("arch") or r["setup"].get("reference"),
        "iteration": r["setup"].get("iteration"),
        "psnr": r["reconstruction"]["psnr"],
        "ssim": r["reconstruction"]["ssim"],
        "transfer_in_box": _mean(t["model"]["in_box_error"] for t in tr),
        "transfer_in_box_no_edit": _mean(t["no_edit"]["in_box_error"] for t in tr),
        "transfer_in_box_paste": _mean(t["paste"]["in_box_error"] for t in tr),
        "transfer_locality": _mean(t["model"].get("locality") for t in tr),
        "attr_error": _mean(a.get("error_rgt", a.get("error_gt")) for a in attrs),
        "attr_error_no_edit": _mean(a.get("error_rgt_no_edit", a.get("error_gt_no_edit")) for a in attrs),
        "attr_success": _mean(a["success"] for a in attrs),
        "attr_success_no_edit": _mean(a["success_no_edit"] for a in attrs),
        "attr_others_kept": _mean(a["others_kept"] for a in attrs),
        "eye_success": _mean(e["success"] for e in eyes),
        "eye_other_kept": _mean(e["other_kept"] for e in eyes),
        "presets_met": next((t["value"] for t in r["targets"] if t.get("kind") == "summary"), "-"),
        "targets_met": sum(bool(t["met"]) for t in r["targets"] if t.get("kind") != "reconstruction"),
        "targets": sum(1 for t in r["targets"] if t.get("kind") != "reconstruction"),
    }


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.0%}"


def to_table(results: Sequence[dict], labels: Sequence[str]) -> str:
    """Markdown table, one row per result."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for label, r in zip(labels, results):
        s = summarize(r)
        it = "-" if s["iteration"] is None else str(s["iteration"])
        lines.append(
            f"| {label} | `{s['arch']}` | {it} | {s['psnr']:.2f} | {s['ssim']:.3f} | "
            f"{s['transfer_in_box']:.4f} ({s['transfer_in_box_no_edit']:.4f} / {s['transfer_in_box_paste']:.4f}) | "
            f"{s['transfer_locality']:.3f} | {_pct(s['attr_success'])} ({_pct(s['attr_success_no_edit'])}) | "
            f"{s['attr_error']:.4f} ({s['attr_error_no_edit']:.4f}) | {_pct(s['attr_others_kept'])} | "
            f"{s['presets_met']} | {_pct(s['eye_success'])} / {_pct(s['eye_other_kept'])} | "
            f"{s['targets_met']} of {s['targets']} |")
    return "\n".join(lines) + "\n"


def load_results(paths: Sequence[str]) -> list[dict]:
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            path = path / "results.json"
        try:
            r = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"no benchmark results at {path}; run python -m evaluation.synth_benchmark first") from None
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read {path}: {e.__class__.__name__}; pass a results.json of "
                            "python -m evaluation.synth_benchmark") from None
        if not isinstance(r, dict) or not {"setup", "reconstruction", "transfer", "targets"} <= set(r):
            raise UserError(f"{path} is not a results.json of python -m evaluation.synth_benchmark")
        out.append(r)
    return out


@main_guard
def main(argv: Optional[Sequence[str]] = None) -> int:
    p = ArgumentParser(description="Compare SynthFaces benchmark runs in one markdown table.")
    p.add_argument("results", nargs="+", help="results.json files (or the folders holding them)")
    p.add_argument("--labels", default=None, help="comma-separated row labels (default: the results' folder names)")
    p.add_argument("--out", default=None, metavar="PATH", help="also write the table to this file")
    args = p.parse_args(argv)
    results = load_results(args.results)
    labels = ([s.strip() for s in args.labels.split(",")] if args.labels
              else [Path(x).parent.name if Path(x).suffix == ".json" else Path(x).name for x in args.results])
    if len(labels) != len(results):
        raise UserError(f"--labels gives {len(labels)} labels for {len(results)} results")
    table = to_table(results, labels)
    print(table, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
