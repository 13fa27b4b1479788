"""The project's own attribute classifier for SynthFaces (multi-label CNN, BCE), used by the
benchmark to judge edited images (attribute accuracy).

Train one (one to two minutes on two CPU cores at 64 px with the defaults)::

    python -m evaluation.attr_classifier --size 64 --out saved/classifiers/synthfaces_64.pt

Without ``--out`` the file goes to the cache that the benchmark reads,
``saved/classifiers/synthfaces_<size>_<faces>f_<epochs>e_d<data seed>_<key>.pt``
(:func:`default_classifier_path`): the name holds every setting the training depends on
(:func:`training_settings`; ``<key>`` is a hash of all of them), so a classifier trained with other
settings never stands in for another. For scoring, a classifier must record its mean validation
accuracy and reach :data:`MIN_ACCURACY` (:func:`check_for_scoring`).

It learns the ``ATTRIBUTES`` labels of SynthFaces faces ``[first_id, first_id + num)`` (data set
seed ``--data_seed``) and is validated on the next ``--num_val`` faces. Training images are
augmented with random blur, noise and small colour changes so that the classifier also reads
generator outputs, which are smoother than the renders. The file is a plain dict
(``torch.load(path, weights_only=True)``): format, architecture, attribute names, weights, the
faces it was trained on and its validation accuracy.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from data_loader.synthfaces import ATTRIBUTES, render, sample_factors
from data_loader.synthfaces.dataset import label_matrix, to_tensor
from data_loader.synthfaces.render import check_size
from model.checkpoint import atomic_save
from utils.cli import ArgumentParser, main_guard, progress as progress_bar
from utils.device import set_threads
from utils.errors import UserError

FORMAT = "iafaces-attr-classifier/1"
DEFAULT_DIR = Path("saved") / "classifiers"
#: The version of :func:`train_classifier`'s recipe (data, augmentation, optimiser, schedule); part
#: of every classifier's settings, so a change of the recipe never reuses an older cache file.
RECIPE = 1
#: The least mean validation accuracy (over the attributes) of a classifier that scores edits.
#: Measured: the default training (8000 faces, 10 epochs) reaches 0.825 at 16 px, 0.888 at 32 px and
#: 0.935 at 64 px; at 32 px 2000 faces for 2 epochs reach 0.791, 1000 for 3 epochs 0.763, and a
#: smoke test's 600 faces for 1 epoch 0.65.
MIN_ACCURACY = 0.8
#: How to train a proper classifier (the flags), for the refusal messages.
TRAIN_HINT = ("train one with the defaults (python -m evaluation.synth_benchmark ... --classifier_faces 8000 "
              "--classifier_epochs 10, or python -m evaluation.attr_classifier --size SIZE)")


class ClassifierError(UserError, ValueError):
    """The classifier file is missing, unreadable or does not fit the images."""


def training_settings(size: int = 64, num: int = 8000, num_val: int = 500, epochs: int = 10, batch_size: int = 64,
                      lr: float = 2e-3, seed: int = 0, data_seed: int = 0, first_id: int = 0, width: int = 32,
                      max_width: int = 128, hidden: int = 256) -> dict:
    """Everything :func:`train_classifier` makes a classifier from (its arguments and :data:`RECIPE`)."""
    return {"recipe": RECIPE, "size": int(size), "num": int(num), "num_val": int(num_val), "epochs": int(epochs),
            "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed), "data_seed": int(data_seed),
            "first_id": int(first_id), "width": int(width), "max_width": int(max_width), "hidden": int(hidden)}


def settings_key(settings: dict) -> str:
    """A short hash of ``settings`` (canonical JSON)."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def default_classifier_path(size: int, settings: Optional[dict] = None) -> Path:
    """The cache file of the classifier trained with ``settings`` (default: the default training at
    ``size``): ``saved/classifiers/synthfaces_<size>_<faces>f_<epochs>e_d<data seed>_<key>.pt``."""
    st = settings if settings is not None else training_settings(size)
    return DEFAULT_DIR / (f"synthfaces_{int(st['size'])}_{st['num']}f_{st['epochs']}e_d{st['data_seed']}_"
                          f"{settings_key(st)}.pt")


def legacy_classifier_path(size: int) -> Path:
    """Where earlier versions cached the benchmark's classifier (keyed by size alone)."""
    return DEFAULT_DIR / f"synthfaces_{int(size)}.pt"


def mean_val_accuracy(clf) -> Optional[float]:
    """The mean over attributes of the validation accuracy the classifier's file records, or None."""
    acc = (getattr(clf, "info", None) or {}).get("val_accuracy")
    if not isinstance(acc, dict) or not acc:
        return None
    try:
        vals = [float(v) for v in acc.values()]
    except (TypeError, ValueError):
        return None
    return float(np.mean(vals)) if all(math.isfinite(v) for v in vals) else None


def describe_classifier(clf) -> dict:
    """What scored a benchmark: the file, how it was trained, its validation accuracy."""
    info = getattr(clf, "info", None) or {}
    data = info.get("data") or {}
    training = info.get("training") or {}
    return {"path": getattr(clf, "path", None), "settings": info.get("settings"),
            "key": settings_key(info["settings"]) if isinstance(info.get("settings"), dict) else None,
            "train_ids": data.get("train_ids"), "data_seed": data.get("seed"), "epochs": training.get("epochs"),
            "size": getattr(clf, "size", None), "mean_val_accuracy": mean_val_accuracy(clf)}


def check_for_scoring(clf, minimum: float = MIN_ACCURACY) -> Optional[float]:
    """The classifier's mean validation accuracy, after checking that it is recorded and at least
    ``minimum`` (0 accepts any classifier, also one without a record); else one-line ClassifierError."""
    acc = mean_val_accuracy(clf)
    if minimum <= 0:
        return acc
    where = getattr(clf, "path", None) or "the attribute classifier"
    d = describe_classifier(clf)
    made = ""
    if d["train_ids"] and d["epochs"]:
        made = f" (trained on {d['train_ids'][1] - d['train_ids'][0]} faces for {d['epochs']} epoch(s))"
    if acc is None:
        raise ClassifierError(f"{where}{made} records no validation accuracy, so it cannot be trusted to score edits; "
                              f"{TRAIN_HINT}, or pass --min_classifier_accuracy 0 to score with it anyway")
    if acc < minimum:
        hint = TRAIN_HINT
        settings = (getattr(clf, "info", None) or {}).get("settings")
        if isinstance(settings, dict) and settings.get("num", 0) >= 8000 and settings.get("epochs", 0) >= 10:
            hint = ("the default training is not enough at this size: train a stronger one with more faces or epochs "
                    "(e.g. --classifier_faces 16000 --classifier_epochs 20)")
        raise ClassifierError(f"{where}{made} reaches a mean validation accuracy of {acc:.3f}, below the {minimum:g} "
                              f"needed to score edits; {hint}, or pass --min_classifier_accuracy 0 to score "
                              "with it anyway")
    return acc


# ---------------------------------------------------------------------------------------- network
class AttributeClassifier(nn.Module):
    """Images [B, 3, S, S] in [-1, 1] -> attribute logits [B, n_attr].

    A stride-2 conv to S/2, then stride-2 conv + BatchNorm + leaky ReLU blocks down to 4x4 (widths
    doubling from ``width`` up to ``max_width``), then a two-layer MLP."""

    def __init__(self, size: int = 64, attribute_names: Optional[Sequence[str]] = None, width: int = 32,
                 max_width: int = 128, hidden: int = 256):
        super().__init__()
        if attribute_names is None:
            attribute_names = ATTRIBUTES
        if size < 16 or size & (size - 1):
            raise ClassifierError(f"classifier size must be a power of two >= 16, got {size}")
        self.size, self.width, self.max_width, self.hidden = int(size), int(width), int(max_width), int(hidden)
        self.attribute_names = tuple(attribute_names)
        layers: list[nn.Module] = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c, res = width, size // 2
        while res > 4:
            c2 = min(2 * c, max_width)
            layers += [nn.Conv2d(c, c2, 4, 2, 1, bias=False), nn.BatchNorm2d(c2), nn.LeakyReLU(0.2)]
            c, res = c2, res // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * 16, hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, len(self.attribute_names)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def _prepare(self, x: Tensor) -> Tensor:
        x = torch.as_tensor(x).float()
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != 3:
            raise ClassifierError(f"images must be [B, 3, H, W], got {list(x.shape)}")
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return x

    @torch.no_grad()
    def predict_proba(self, images: Tensor, batch_size: int = 128) -> Tensor:
        """Probabilities [B, n_attr] (images resized to the classifier's size when needed)."""
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        x = self._prepare(images)
        out = [torch.sigmoid(self(x[i:i + batch_size].to(dev))).cpu() for i in range(0, x.shape[0], batch_size)]
        self.train(was)
        return torch.cat(out) if out else torch.zeros(0, len(self.attribute_names))

    def predict(self, images: Tensor, batch_size: int = 128) -> Tensor:
        """Labels bool [B, n_attr] (probability > 0.5)."""
        return self.predict_proba(images, batch_size) > 0.5

    def index(self, attribute: str) -> int:
        for i, a in enumerate(self.attribute_names):
            if a.lower() == attribute.lower():
                return i
        raise ClassifierError(f"the classifier knows no attribute '{attribute}'; it has "
                              f"{', '.join(self.attribute_names)}")

    def arch(self) -> dict:
        return {"size": self.size, "width": self.width, "max_width": self.max_width, "hidden": self.hidden}


# -------------------------------------------------------------------------------------- storage
def save_classifier(clf: AttributeClassifier, path: Union[str, Path], info: Optional[dict] = None) -> None:
    """Plain-dict file, loadable with ``torch.load(weights_only=True)``."""
    payload = {"format": FORMAT, "arch": clf.arch(), "attributes": list(clf.attribute_names),
               "state_dict": {k: v.detach().cpu() for k, v in clf.state_dict().items()}}
    payload.update(info or {})
    atomic_save(payload, path)


def load_classifier(path: Union[str, Path], device="cpu") -> AttributeClassifier:
    """Rebuild a classifier from :func:`save_classifier`'s file (eval mode); ``info`` holds the
    rest of the file (training data, validation accuracy)."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"attribute classifier not found: {path} (train one with python -m "
                              "evaluation.attr_classifier --out PATH)")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ClassifierError(f"cannot read attribute classifier {path}: {e.__class__.__name__}") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ClassifierError(f"{path} is not an attribute classifier file (format {FORMAT})")
    clf = AttributeClassifier(attribute_names=d["attributes"], **d["arch"])
    try:
        clf.load_state_dict(d["state_dict"])
    except RuntimeError as e:
        raise ClassifierError(f"{path}: weights do not match the stored architecture "
                              f"({str(e).splitlines()[0]})") from None
    clf.info = {k: v for k, v in d.items() if k not in ("state_dict",)}
    clf.path = str(path)
    return clf.to(device).eval()


# ------------------------------------------------------------------------------------- training
def render_faces(ids: Sequence[int], size: int, seed: int = 0, progress: Optional[Callable[[int], None]] = None
                 ) -> tuple[Tensor, Tensor]:
    """SynthFaces faces ``ids``: (uint8 images [N, S, S, 3], float 0/1 labels [N, n_attr]); uint8
    keeps the training set small, :func:`to_float` converts batches."""
    ids = [int(i) for i in ids]
    imgs, labels = [], []
    for start in range(0, len(ids), 100):
        factors = [sample_factors(seed, i) for i in ids[start:start + 100]]
        imgs.extend(render(f, size) for f in factors)
        labels.append(label_matrix(factors))
        if progress is not None:
            progress(len(factors))
    return torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.concatenate(labels)).float()


def to_float(x_uint8: Tensor) -> Tensor:
    """uint8 faces [B, S, S, 3] -> float [B, 3, S, S] in [-1, 1]."""
    return to_tensor(x_uint8)


def _gaussian_kernels(sigmas: Tensor, radius: int) -> Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None] / sigmas.clamp(min=1e-3)[:, None]) ** 2)
    return k / k.sum(1, keepdim=True)


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random per-image Gaussian blur (sigma up to size/64 px, half of the images), noise and
    brightness/contrast jitter; x in [-1, 1]."""
    B, C, H, W = x.shape
    sig = torch.rand(B, generator=gen) * (H / 64.0) * (torch.rand(B, generator=gen) < 0.5)
    radius = max(1, math.ceil(2 * H / 64.0))
    k = _gaussian_kernels(sig, radius).repeat_interleave(C, 0)  # [B*C, 2r+1]
    y = x.reshape(1, B * C, H, W)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=B * C)
    y = F.conv2d(y, k[:, None, :, None], groups=B * C).reshape(B, C, H, W)
    a = 1 + (torch.rand(B, 1, 1, 1, generator=gen) - 0.5) * 0.2
    b = (torch.rand(B, 1, 1, 1, generator=gen) - 0.5) * 0.1
    noise = torch.randn(B, C, H, W, generator=gen) * (torch.rand(B, 1, 1, 1, generator=gen) * 0.04)
    return (y * a + b + noise).clamp(-1, 1)


@torch.no_grad()
def accuracy(clf: AttributeClassifier, images: Tensor, labels: Tensor) -> dict[str, float]:
    """Per-attribute accuracy of ``clf`` on float images [-1, 1] and 0/1 labels."""
    pred = clf.predict(images).float()
    acc = (pred == (labels > 0.5).float()).float().mean(0)
    return {a: float(v) for a, v in zip(clf.attribute_names, acc)}


def train_classifier(size: int = 64, num: int = 8000, num_val: int = 500, epochs: int = 10, batch_size: int = 64,
                     lr: float = 2e-3, seed: int = 0, data_seed: int = 0, first_id: int = 0, width: int = 32,
                     max_width: int = 128, hidden: int = 256, progress: bool = True,
                     log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> AttributeClassifier:
    """Train a classifier on SynthFaces ``[first_id, first_id + num)``, validate on the next
    ``num_val`` faces. Returns the classifier (eval mode) with ``info`` filled for saving: the data,
    the training, every setting (:func:`training_settings`) and the validation accuracy."""
    if num < 2 or epochs < 1 or batch_size < 1:
        raise ClassifierError("--num must be >= 2, --epochs and --batch_size >= 1")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    steps = epochs * math.ceil(num / batch_size)
    bar = progress_bar(num + num_val + steps, "attribute classifier (render + train)", unit="it", enabled=progress)
    train_ids = range(first_id, first_id + num)
    val_ids = range(first_id + num, first_id + num + num_val)
    x_tr, y_tr = render_faces(train_ids, size, data_seed, bar.update)
    x_va, y_va = render_faces(val_ids, size, data_seed, bar.update) if num_val else (None, None)
    clf = AttributeClassifier(size, ATTRIBUTES, width, max_width, hidden)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, betas=(0.5, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    clf.train()
    loss_avg = None
    for _ in range(epochs):
        order = torch.randperm(num, generator=gen)
        for i in range(0, num, batch_size):
            idx = order[i:i + batch_size]
            x = augment(to_float(x_tr[idx]), gen)
            loss = F.binary_cross_entropy_with_logits(clf(x), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_avg:.3f}")
    bar.close()
    clf.eval()
    info = {"data": {"type": "SynthFaces", "seed": int(data_seed), "size": int(size),
                     "train_ids": [first_id, first_id + num], "val_ids": [first_id + num, first_id + num + num_val]},
            "training": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                         "augment": "blur/noise/colour", "seconds": round(time.time() - t0, 1)},
            "settings": training_settings(size, num, num_val, epochs, batch_size, lr, seed, data_seed, first_id,
                                          width, max_width, hidden)}
    if num_val:
        val = to_float(x_va)
        info["val_accuracy"] = accuracy(clf, val, y_va)
        info["mean_val_accuracy"] = float(np.mean(list(info["val_accuracy"].values())))
        info["val_accuracy_blurred"] = accuracy(clf, augment(val, torch.Generator().manual_seed(1)), y_va)
        log(f"attribute classifier: mean validation accuracy {np.mean(list(info['val_accuracy'].values())):.3f} "
            f"({time.time() - t0:.0f} s)")
    clf.info = info
    return clf


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description="Train the SynthFaces attribute classifier used by the benchmark.")
    p.add_argument("--size", type=int, default=64, help="image size (the model's size; default 64)")
    p.add_argument("--out", default=None, help="output file (default: the benchmark's cache, "
                   "saved/classifiers/synthfaces_<size>_<faces>f_<epochs>e_d<data seed>_<settings key>.pt)")
    p.add_argument("--num", type=int, default=8000, help="training faces (default 8000)")
    p.add_argument("--num_val", type=int, default=500, help="validation faces (default 500)")
    p.add_argument("--first_id", type=int, default=0, help="first SynthFaces face id used (default 0)")
    p.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=32, help="channels of the first conv (default 32)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--data_seed", type=int, default=0, help="SynthFaces data set seed (default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    set_threads(args.threads)
    try:
        check_size(args.size)
    except ValueError as e:
        raise ClassifierError(str(e)) from None
    settings = training_settings(args.size, args.num, args.num_val, args.epochs, args.batch_size, args.lr, args.seed,
                                 args.data_seed, args.first_id, args.width)
    out = Path(args.out) if args.out else default_classifier_path(args.size, settings)
    clf = train_classifier(args.size, args.num, args.num_val, args.epochs, args.batch_size, args.lr, args.seed,
                           args.data_seed, args.first_id, args.width)
    save_classifier(clf, out, clf.info)
    for a, v in clf.info.get("val_accuracy", {}).items():
        print(f"{a:22s} {v:.3f}")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
