"""The benchmark's runner: :class:`Benchmark` renders the held-out faces, has an edit maker
reconstruct, transfer and move them, and scores every edit against its exact counterfactual."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from data_loader import synthfaces as sf
from data_loader.synthfaces.dataset import label_matrix, render_batch, split_ranges
from editing import PRESETS, RECIPES, Editor, get_boundary
from editing.boundaries import label_embeddings
from model.boxes import COMPONENTS, component_indices
from utils.errors import UserError
from utils.image_io import make_grid, save_image

from ..discriminators import discriminator_kind, ifg_label
from ..metrics import box_mask, ifg, masked_mse, mse, mse_irr, psnr, ssim
from .edits import SINGLE_EYE, TRANSFER_COMPONENTS, ModelEdits, ReferenceEdits, _log, held_out_ids, synthfaces_setup
from .targets import evaluate_targets, locality

STRENGTH_MODES = ("calibrated", "official")
# Strength fitted per edit (calibrated mode, no --strength_scale): the smallest of these multiples
# of the class gap at which the classifier reads the target label on FIT_SUCCESS of the edited
# validation faces (FIT_FACES faces of the data set's validation split, never the test faces).
FIT_SCALES = (1.0, 1.25, 1.5, 1.75, 2.0)
FIT_SUCCESS = 0.9
FIT_FACES = 200


def _names(spec: str) -> set[str]:
    return {COMPONENTS[i] for i in component_indices(spec)}


def _batch8(metric, x: Tensor, r: Tensor) -> float:
    """A metric with the release's conventions: batches of 8, each value weighted by its size."""
    total = sum(metric(x[i:i + 8], r[i:i + 8]) * len(x[i:i + 8]) for i in range(0, len(x), 8))
    return float(total / len(x))



class Benchmark:
    """Runs every part of the benchmark for one edit maker; results accumulate in ``self.results``.

    ``editor``: the model under test (``reference`` None), or None with ``reference`` ``"oracle"`` /
    ``"no_edit"`` and ``size`` to score a reference edit maker. ``strength_mode``: ``calibrated``
    moves each edited component by its boundary's class gap (the distance between the mean
    projections of the faces with and without the attribute) times ``strength_scale`` (None:
    fitted per edit on validation faces, :meth:`fit_scale`); ``official`` uses the presets'
    strengths (and ``eye_strength``) times ``strength_scale`` (None: 1)."""

    def __init__(self, editor, classifier, out_dir: Path, num: int = 200, label_source=None,
                 boundary_dir: Optional[Path] = None, discriminator=None, eye_strength: float = 4.0,
                 strength_scale: Optional[float] = None, grid_rows: int = 8, setup: Optional[dict] = None,
                 log: Callable[[str], None] = _log, strength_mode: str = "calibrated",
                 reference: Optional[str] = None, size: Optional[int] = None, recipe: Optional[str] = None):
        if recipe is None:
            recipe = editor.boundary_recipe if editor is not None else "release"
        if recipe not in RECIPES:
            raise UserError(f"unknown boundary recipe {recipe!r}; valid: {', '.join(RECIPES)}")
        self.recipe = recipe
        if strength_mode not in STRENGTH_MODES:
            raise UserError(f"unknown strength mode {strength_mode!r}; valid: {', '.join(STRENGTH_MODES)}")
        if (editor is None) == (reference is None):
            raise UserError("give either a model (editor) or a reference edit maker, not both")
        self.ed, self.clf, self.out = editor, classifier, Path(out_dir)
        self.edits = ModelEdits(editor) if editor is not None else ReferenceEdits(reference)
        self.size = editor.size if editor is not None else int(size)
        self.batch_size = editor.batch_size if editor is not None else 16
        self.setup = setup or synthfaces_setup(editor.config if editor is not None else {}, log)
        self.log = log
        self.D = discriminator
        self.label_source, self.boundary_dir = label_source, boundary_dir
        # None: fitted per edit on validation faces in calibrated mode (fit_scale), 1 in official mode.
        self.fit = strength_scale is None and strength_mode == "calibrated" and editor is not None
        self.eye_strength = float(eye_strength)
        self.strength_scale = 1.0 if strength_scale is None else float(strength_scale)
        self._val = None
        self.strength_mode = strength_mode
        self.grid_rows = max(0, int(grid_rows))
        self.ids = held_out_ids(self.setup, num)
        self.factors = [sf.sample_factors(self.setup["seed"], i) for i in self.ids]
        self.labels = label_matrix(self.factors)
        self.attr_names = list(sf.ATTRIBUTES)
        self.out.mkdir(parents=True, exist_ok=True)
        self.grids: list[str] = []
        self.results: dict = {}
        self._boundaries: dict = {}

    # -- helpers ----------------------------------------------------------------------------
    def _cidx(self, attr: str) -> int:
        return self.clf.index(attr)

    def predict(self, images: Tensor) -> np.ndarray:
        """Classifier labels as bool [N, n_attr] in SynthFaces ATTRIBUTES order."""
        p = self.clf.predict(images).numpy()
        return np.stack([p[:, self._cidx(a)] for a in self.attr_names], 1)

    def ifg(self, edited: Tensor, source: Tensor) -> Optional[float]:
        if self.D is None:
            return None
        # the project's D scores each image alone; any other (minibatch stddev, or unknown) one image at a time
        batch = self.batch_size if discriminator_kind(self.D) == "checkpoint" else 1
        return ifg(self.D, edited, source, batch_size=batch)

    def boundary(self, attribute: str):
        if attribute not in self._boundaries:
            self._boundaries[attribute] = get_boundary(self.ed, attribute, self.boundary_dir, source=self.label_source,
                                                       explicit_source=True, log=self.log, recipe=self.recipe)
        return self._boundaries[attribute]

    def class_gaps(self, b) -> Tensor:
        """Per component [4]: mean projection on the normal of the label faces with the attribute
        minus that of the faces without it."""
        components = label_embeddings(self.ed, self.label_source, self.boundary_dir, log=self.log)
        y = self.label_source.label_table()[:, list(self.label_source.attribute_names).index(b.attribute)]
        proj = (components.float() * b.normals[None]).sum(-1)  # [N, 4]
        yt = torch.from_numpy(np.asarray(y, dtype=bool))
        return proj[yt].mean(0) - proj[~yt].mean(0)

    def directions(self, attr: str, preset_strength: float) -> tuple[Tensor, float, dict]:
        """(directions [4, D], signed strength, report fields) for an edit toward ``attr`` when
        ``preset_strength`` > 0 (away from it when < 0)."""
        if self.ed is None:
            return torch.zeros(len(COMPONENTS), 1), preset_strength, {}
        b = self.boundary(attr)
        info = {"boundary_val_accuracy": [float(v) for v in b.val_accuracy]}
        if self.strength_mode == "official":
            return b.normals, preset_strength * self.strength_scale, info
        gaps = self.class_gaps(b)
        info["class_gap"] = [float(g) for g in gaps]
        sign = 1.0 if preset_strength > 0 else -1.0
        return b.normals * gaps[:, None], sign * self.strength_scale, info

    def fit_scale(self, attr: str, target: bool, dirs: Tensor, strength: float, comps: str,
                  other: Optional[str] = None) -> tuple[float, dict]:
        """(scale, report fields): the smallest of ``FIT_SCALES`` at which the classifier reads
        ``attr`` = ``target`` on ``FIT_SUCCESS`` of the edited validation faces that lack it (and
        whose reconstruction it reads right; ``other``: an attribute that must be unset, read right
        too, as for the single-eye edits); the best one when none does."""
        if self._val is None:
            ids = list(split_ranges(**self.setup["splits"])["val"][:FIT_FACES])
            factors = [sf.sample_factors(self.setup["seed"], i) for i in ids]
            x = render_batch(factors, self.size)
            content, components = self.ed.encode(x)
            self._val = (label_matrix(factors), content, components, self.predict(self.ed.decode(content, components)))
        labels, content, components, pred_r = self._val
        a = self.attr_names.index(attr)
        keep = labels[:, a] != target
        checked = [a]
        if other is not None:
            o = self.attr_names.index(other)
            keep &= ~labels[:, o]
            checked.append(o)
        keep &= (pred_r[:, checked] == labels[:, checked]).all(1)
        sel = np.flatnonzero(keep)
        rates = {}
        if len(sel):
            for scale in FIT_SCALES:
                edited = self.ed.decode(content[sel],
                                        Editor.apply_direction(components[sel], dirs, strength * scale, comps))
                rates[scale] = float((self.predict(edited)[:, a] == target).mean())
                if rates[scale] >= FIT_SUCCESS:
                    break
        chosen = next((k for k, v in rates.items() if v >= FIT_SUCCESS), max(rates, key=rates.get, default=1.0))
        return chosen, {"fitted_scale": chosen, "fit_faces": int(len(sel)),
                        "fit_success": {f"{k:g}": v for k, v in rates.items()}}

    def grid(self, name: str, columns: Sequence[Tensor], header: str) -> None:
        if not self.grid_rows or columns[0].shape[0] == 0:
            return
        n = min(self.grid_rows, columns[0].shape[0])
        rows = [[c[k] for c in columns] for k in range(n)]
        path = self.out / f"grid_{name}.png"
        save_image(make_grid(rows), path)
        self.grids.append(f"{path.name}: {header}")

    # -- parts ------------------------------------------------------------------------------
    def run_reconstruction(self) -> None:
        t = time.time()
        self.x = render_batch(self.factors, self.size)
        self.recon = self.edits.reconstruct(self.x)
        x, r = self.x, self.recon
        self.pred_real, self.pred_recon = self.predict(x), self.predict(r)
        self.results["reconstruction"] = {
            # The benchmark's own conventions (kept so its tables stay comparable): per-image PSNR
            # mean and scikit-image SSIM on plain [0, 1] images; the release's conventions beside them.
            "num": len(self.ids), "mse": mse(x, r), "psnr": psnr(x, r, "mean", minmax=False),
            "psnr_batch": psnr(x, r, "batch", minmax=False), "ssim": ssim(x, r, variant="skimage", minmax=False),
            "psnr_official": _batch8(psnr, x, r), "ssim_official": _batch8(ssim, x, r),
            "seconds": round(time.time() - t, 1)}
        acc_real = (self.pred_real == self.labels).mean(0)
        acc_rec = (self.pred_recon == self.labels).mean(0)
        self.results["classifier"] = {
            "path": getattr(self.clf, "path", None),
            "accuracy_real": {a: float(v) for a, v in zip(self.attr_names, acc_real)},
            "accuracy_reconstruction": {a: float(v) for a, v in zip(self.attr_names, acc_rec)},
            "mean_accuracy_real": float(acc_real.mean()), "mean_accuracy_reconstruction": float(acc_rec.mean())}
        self.grid("reconstruction", [x, r], "input | reconstruction")

    def run_transfer(self) -> None:
        n = len(self.ids)
        ref = [(k + 1) % n for k in range(n)]
        x, recon = self.x, self.recon
        out = {}
        for comp in TRANSFER_COMPONENTS:
            t = time.time()
            names = _names(comp)
            attrs = [a for a in self.attr_names
                     if a not in sf.GLOBAL_ATTRIBUTES and set(sf.ATTRIBUTE_COMPONENTS[a]) & names]
            ai = [self.attr_names.index(a) for a in attrs]
            gt_f = [sf.transfer(self.factors[k], self.factors[ref[k]], comp) for k in range(n)]
            gt = render_batch(gt_f, self.size)
            gt_labels = label_matrix(gt_f)[:, ai]
            edited = self.edits.transfer(ref, comp, gt)
            m_in = box_mask(self.size, comp).float()
            methods = {
                "model": (edited, recon),
                "no_edit": (recon, recon),
                "paste": (recon * (1 - m_in) + recon[ref] * m_in, recon),
                "paste_real": (x * (1 - m_in) + x[ref] * m_in, x),
            }
            row = {"attributes": attrs}
            for name, (img, source) in methods.items():
                pred = self.predict(img)[:, ai] if name != "no_edit" else self.pred_recon[:, ai]
                irr, change = mse_irr(source, img, comp), masked_mse(img, source, m_in)
                row[name] = {
                    "in_box_error": masked_mse(img, gt, m_in),
                    "out_box_error": masked_mse(img, gt, 1 - m_in),
                    "mse_irr": irr, "in_box_change": change, "locality": locality(irr, change),
                    "attr_agreement": float((pred == gt_labels).mean()) if ai else None,
                    "ifg": self.ifg(img, source) if name in ("model", "paste") else None,
                }
            row["seconds"] = round(time.time() - t, 1)
            out[comp] = row
            self.grid(f"transfer_{comp}", [x, x[ref], gt, edited, methods["paste"][0], recon],
                      f"transfer {comp}: target | reference | ground truth | IA-FaceS | paste baseline | no edit")
        self.results["transfer"] = out

    def run_attributes(self) -> None:
        out = {}
        for key, preset in PRESETS.items():
            attr = preset.attribute
            if attr not in self.attr_names:
                continue
            t = time.time()
            # Along the label's boundary; every preset adds its attribute (beard: No_Beard, sign -1).
            label_strength = preset.label_strength(preset.strength)
            target = label_strength > 0
            a = self.attr_names.index(attr)
            sel = [k for k in range(len(self.ids)) if self.labels[k, a] != target]
            row = {"attribute": attr, "components": preset.components, "target": bool(target), "num": len(sel)}
            if not sel:
                row["note"] = "no held-out face lacks the target label"
                out[key] = row
                continue
            scores, edited, gt, _, _ = self._attribute_edit(sel, attr, target, label_strength, preset.components)
            row.update(scores)
            row["seconds"] = round(time.time() - t, 1)
            out[key] = row
            self.grid(f"attribute_{key}", [self.x[sel], self.recon[sel], gt, edited],
                      f"{key} ({attr} on {preset.components}, strength {row['strength']:g}): input | reconstruction | "
                      "ground truth | edit")
        self.results["attributes"] = out

    def _attribute_edit(self, sel: list[int], attr: str, target: bool, preset_strength: float, comps: str,
                        other: Optional[str] = None):
        """Move faces ``sel`` along ``attr``'s boundary on ``comps`` and score the edit against the
        ground truth (the faces with ``attr`` set to ``target``) -> (scores, edited, ground truth,
        classifier labels of the edits, faces read right). ``other``: an attribute whose label must be read right
        on the reconstruction too (the other eye of a single-eye edit)."""
        gt_f = [sf.flip_attribute(self.factors[k], attr, target) for k in sel]
        gt = render_batch(gt_f, self.size)
        dirs, strength, info = self.directions(attr, preset_strength)
        if self.fit:
            scale, fit_info = self.fit_scale(attr, target, dirs, strength, comps, other)
            strength, info = strength * scale, {**info, **fit_info}
        edited = self.edits.move(sel, dirs, strength, comps, gt)
        pred_e = self.predict(edited)
        checked = [self.attr_names.index(attr)] + ([self.attr_names.index(other)] if other else [])
        scores, readable = self._edit_scores(sel, edited, gt, label_matrix(gt_f), pred_e,
                                             self.attr_names.index(attr), target, comps, checked,
                                             self.edits.render(gt))
        return {"strength": strength, **info, **scores}, edited, gt, pred_e, readable

    def _edit_scores(self, sel, edited, gt, gt_labels, pred_e, a: int, target: bool, comps: str,
                     checked: Sequence[int], gt_rendered: Tensor) -> tuple[dict, np.ndarray]:
        """``gt_rendered``: the edit maker's own rendering of the ground truth (for a model, its
        reconstruction of the flipped face; for the references, the face itself): the edit is
        judged against it, so that the reconstruction error, judged by its own target, does not
        swamp the edit (see ``_edit_checks``)."""
        src = self.recon[sel]
        pred_r = self.pred_recon[sel]
        # Faces whose reconstruction the classifier reads right on the checked attributes: only on
        # them can its reading of the edit say whether the edit worked.
        readable = (pred_r[:, checked] == self.labels[sel][:, checked]).all(1)
        others = np.ones_like(gt_labels, dtype=bool)
        others[:, a] = False
        others &= gt_labels == self.labels[sel]  # attributes that the ground-truth flip keeps
        changed = (pred_e != pred_r) & others
        per_attr = {}
        for j, name in enumerate(self.attr_names):
            if others[:, j].any():
                per_attr[name] = float(changed[:, j].sum() / others[:, j].sum())
        m_in = box_mask(self.size, comps).float()
        irr, change = mse_irr(src, edited, comps), masked_mse(edited, src, m_in)
        irr_truth = mse_irr(self.x[sel], gt, comps)
        hit = pred_e[:, a] == target
        # The same reading on the edit maker's rendering of the ground truth: what a perfect edit
        # of this model would score (a reconstruction that blurs a thin feature caps the edit too).
        hit_rgt = self.predict(gt_rendered)[:, a] == target
        return {
            "readable": float(readable.mean()), "num_readable": int(readable.sum()),
            "success": float(hit[readable].mean()) if readable.any() else 0.0,
            "success_all": float(hit.mean()),
            "success_no_edit": float((pred_r[:, a] == target).mean()),
            "success_rendered_gt": float(hit_rgt[readable].mean()) if readable.any() else 0.0,
            "others_changed": float(changed.sum() / max(others.sum(), 1)),
            "others_kept": 1.0 - float(changed.sum() / max(others.sum(), 1)),
            "others_changed_by_attribute": per_attr,
            "error_gt": mse(edited, gt), "error_gt_no_edit": mse(src, gt),
            "error_rgt": mse(edited, gt_rendered), "error_rgt_no_edit": mse(src, gt_rendered),
            "mse_irr": irr, "mse_irr_truth": irr_truth, "in_box_change": change,
            "locality": locality(irr, change, irr_truth), "ifg": self.ifg(edited, src),
        }, readable

    def run_single_eye(self) -> None:
        out = {}
        li, ri = self.attr_names.index("Left_Eye_Closed"), self.attr_names.index("Right_Eye_Closed")
        sel = [k for k in range(len(self.ids)) if not self.labels[k, li] and not self.labels[k, ri]]
        for attr, comp, other in SINGLE_EYE:
            t = time.time()
            o = self.attr_names.index(other)
            row = {"component": comp, "other": other, "num": len(sel)}
            if not sel:
                row["note"] = "no held-out face has both eyes open"
                out[attr] = row
                continue
            strength = self.eye_strength if self.strength_mode == "official" else 1.0
            scores, edited, gt, pred_e, readable = self._attribute_edit(sel, attr, True, strength, comp, other=other)
            kept = pred_e[:, o] == self.pred_recon[sel][:, o]
            scores["other_kept"] = float(kept[readable].mean()) if readable.any() else 0.0
            row.update(scores)
            row["seconds"] = round(time.time() - t, 1)
            out[attr] = row
            self.grid(f"single_eye_{comp}", [self.x[sel], self.recon[sel], gt, edited],
                      f"{attr} on {comp} only (strength {row['strength']:g}): input | reconstruction | ground truth "
                      "| edit")
        self.results["single_eye"] = out

    def run(self) -> dict:
        t0 = time.time()
        # What the IFG columns are: in-memory images, so never the paper's IFG (see ifg_label).
        self.results["ifg_discriminator"] = (None if self.D is None else
                                             {"kind": discriminator_kind(self.D), "label": ifg_label(self.D)})
        steps = [("reconstruction", self.run_reconstruction), ("component transfer", self.run_transfer),
                 ("attribute manipulation", self.run_attributes), ("single-eye editing", self.run_single_eye)]
        for name, fn in steps:
            self.log(f"benchmark: {name}")
            fn()
        self.results["targets"] = evaluate_targets(self.results)
        self.results["grids"] = self.grids
        self.results["seconds"] = round(time.time() - t0, 1)
        return self.results

