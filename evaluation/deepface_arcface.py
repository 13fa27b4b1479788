"""Arc-dis as the IA-FaceS release computes it: DeepFace's ArcFace, reproduced without TensorFlow.

The release (``metrics/arc_dis.py``) averages, over the faces of one evaluation list,
``DeepFace.verify(real/<id>.png, fake/<id>.png, model_name="ArcFace")["distance"]`` with DeepFace's
defaults: OpenCV Haar detector with eye alignment, ``enforce_detection=True``, cosine distance.
This module reproduces each step of DeepFace 0.0.75 (the 2022 release series; 0.0.69-0.0.75 only
differ in the eye order, ``sort_eyes``):

* **detection** (``OpenCvWrapper``): ``haarcascade_frontalface_default.xml``,
  ``detectMultiScale(bgr, 1.1, 10)``; every face found is aligned, the first one is used. No face:
  the pair is dropped (DeepFace raises, the release's bare ``except`` counts it).
* **alignment**: ``haarcascade_eye.xml``, ``detectMultiScale(gray face, 1.1, 10)``; the eyes are
  sorted by DeepFace's key ``|(x - w) * (y - h)|`` (descending, since 0.0.74), the first two are the
  eyes (left = smaller x), their centres ``int(x + w / 2)``; the face is rotated with PIL's
  ``Image.rotate`` (nearest neighbour) by the angle of the cosine rule of ``alignment_procedure``.
  Fewer than two eyes: no rotation.
* **preprocessing**: resize keeping the aspect to fit 112 px (``cv2.resize``, bilinear), pad with
  black to 112 x 112 (centred), ``float32 / 255``, **BGR** channel order (DeepFace never converts).
* **network**: DeepFace's ArcFace, a Keras ResNet34 (``basemodels/ArcFace.py``) ->
  BatchNorm -> Dropout -> Flatten -> Dense 512 -> BatchNorm ("embedding"), ported to PyTorch
  (:class:`ArcFaceResNet34`) and read from DeepFace's own weight file ``arcface_weights.h5``
  (HDF5, weights only, with h5py).
* **distance**: ``1 - a.b / (|a| |b|)`` in float64 (DeepFace's ``findCosineDistance``); DeepFace's
  verification threshold for ArcFace/cosine is 0.68 (:data:`ARCFACE_COSINE_THRESHOLD`).

OpenCV 5 no longer has ``cv2.CascadeClassifier`` (it moved to opencv-contrib), so the Haar detector
is a NumPy port of OpenCV's ``CascadeClassifier::detectMultiScale`` (:class:`HaarCascade`: the same
scale pyramid, integral images, variance normalisation, float32 stump sums, stripe and step rules,
``groupRectangles`` and clipping; boxes identical to OpenCV 4.11 and 5.1-contrib on 63 test images),
reading the cascade XML files. The files come from ``haar_dir`` (``--deepface_haar DIR``) or from
``cv2.data.haarcascades`` (opencv-python < 5). Boxes come in the order of a single-threaded OpenCV
run; a multi-threaded OpenCV may list several faces (or eyes) in another order, which only matters
when an image holds several faces or more than two eye detections with equal sort keys.

Optional: ``backend="deepface"`` calls the ``deepface`` package itself (with TensorFlow; not a
project requirement) with the same weight file, pointing DeepFace's home at a temporary folder so
that it never downloads.
"""
from __future__ import annotations

import contextlib
import gzip
import math
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from utils.cli import ArgumentParser, main_guard, progress
from utils.errors import ImageError, MetricError

PathLike = Union[str, Path]

WEIGHTS_FILE = "arcface_weights.h5"
WEIGHTS_URL = "https://github.com/serengil/deepface_models/releases/download/v1.0/arcface_weights.h5"
MISSING_WEIGHTS = (f"DeepFace's ArcFace weights {WEIGHTS_FILE} are needed (DeepFace downloads them to "
                   f"~/.deepface/weights/ from {WEIGHTS_URL}); pass --deepface_arcface PATH")
FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
MISSING_CASCADES = (f"DeepFace's OpenCV detector needs {FACE_CASCADE} and {EYE_CASCADE} (OpenCV's "
                    "data/haarcascades; opencv-python-headless < 5 ships them in cv2/data); pass --deepface_haar DIR")

INPUT_SIZE = 112
EMBEDDING_SIZE = 512
ARCFACE_COSINE_THRESHOLD = 0.68  # DeepFace's findThreshold("ArcFace", "cosine")
BN_EPS = 2e-5
# DeepFace's ResNet34: (Keras name prefix, filters, blocks); each first block has stride 2.
STACKS = (("conv2", 64, 3), ("conv3", 128, 4), ("conv4", 256, 6), ("conv5", 512, 3))
FLAT_SIZE = 7 * 7 * 512

# The release's table: the list each edit is evaluated on (``dicts`` in metrics/arc_dis.py).
RELEASE_LISTS = {
    "mouth_open": "mouth_close", "mouth_close": "mouth_open", "young": "old", "beard": "no_beard",
    "bushy": "arched", "arched": "bushy", "narrow_eyes": "no_narrow_eyes", "male": "female",
    "female": "male", "smile": "no_smile", "bags": "no_bags", "big_nose": "pointy_nose",
    "big_lips": "no_big_lips",
}
# The lists the edits are made on (editing.editor.PRESETS): the release's table swaps these two.
UNSWAPPED_LISTS = {"bushy": "no_bushy", "arched": "no_arched"}
NOT_DETECTED_DIRS = ("metrics/not_detecetd", "not_detecetd")  # the release's spelling


# ------------------------------------------------------------------------------------ Haar cascade
def _round_half_even(v) -> np.ndarray:
    """OpenCV's ``cvRound`` (round half to even), elementwise, as int64."""
    return np.rint(v).astype(np.int64)


MAX_CASCADE_BYTES = 64 << 20  # OpenCV's largest cascade file is under 3 MB


def _open_text(path: Path) -> bytes:
    """The file's bytes (decompressed for ``.gz``), refused beyond :data:`MAX_CASCADE_BYTES`."""
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        data = f.read(MAX_CASCADE_BYTES + 1)
    if len(data) > MAX_CASCADE_BYTES:
        raise MetricError(f"{path}: larger than {MAX_CASCADE_BYTES >> 20} MB, not a Haar cascade")
    return data


@dataclass
class HaarCascade:
    """A stump-based Haar cascade (OpenCV's new XML format) and OpenCV's ``detectMultiScale``.

    Arrays: ``stage_sizes [S]``, ``stage_thresholds [S]`` (float32, already minus OpenCV's 1e-5),
    per stump ``feature [N]``, ``threshold, left, right [N]`` (float32), per feature
    ``rects [F, 3, 4]`` (x, y, w, h) and ``weights [F, 3]`` (float32, 0 for a missing third rect)."""

    width: int
    height: int
    stage_sizes: np.ndarray
    stage_thresholds: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    rects: np.ndarray
    weights: np.ndarray

    @classmethod
    def load(cls, path: PathLike) -> "HaarCascade":
        """Read an OpenCV cascade XML file (``.xml`` or ``.xml.gz``)."""
        path = Path(path)
        if not path.is_file():
            raise MetricError(f"Haar cascade not found: {path} ({MISSING_CASCADES})")
        try:
            root = ET.fromstring(_open_text(path)).find("cascade")
        except (ET.ParseError, OSError, EOFError) as e:
            raise MetricError(f"{path}: not an OpenCV cascade XML file ({e})") from None
        try:
            cascade = cls._parse(root)
        except (AttributeError, TypeError, ValueError, IndexError) as e:
            raise MetricError(f"{path}: not a boosted stump Haar cascade in OpenCV's XML format ({e})") from None
        nfeat = len(cascade.rects)
        x, y, w, h = (cascade.rects[..., k] for k in range(4))
        if (cascade.feature.min(initial=0) < 0 or cascade.feature.max(initial=0) >= nfeat or (x < 0).any()
                or (y < 0).any() or (w < 0).any() or (h < 0).any() or (x + w > cascade.width).any()
                or (y + h > cascade.height).any()):
            raise MetricError(f"{path}: the cascade's features do not fit its {cascade.width}x{cascade.height} window")
        return cascade

    @classmethod
    def _parse(cls, root) -> "HaarCascade":
        if root.findtext("stageType").strip() != "BOOST" or root.findtext("featureType").strip() != "HAAR":
            raise ValueError("stageType must be BOOST and featureType HAAR")
        sizes, stage_thr, stumps = [], [], []
        for stage in root.find("stages"):
            weak = list(stage.find("weakClassifiers"))
            sizes.append(len(weak))
            stage_thr.append(np.float32(float(stage.findtext("stageThreshold"))) - np.float32(1e-5))
            for w in weak:
                nodes, leaves = w.findtext("internalNodes").split(), w.findtext("leafValues").split()
                if len(nodes) != 4 or len(leaves) != 2:
                    raise ValueError("only stumps (one node per weak classifier) are supported")
                stumps.append((int(nodes[2]), float(nodes[3]), float(leaves[0]), float(leaves[1])))
        rects, weights = [], []
        for feat in root.find("features"):
            if int(feat.findtext("tilted", "0") or 0):
                raise ValueError("tilted Haar features are not supported")
            r = np.zeros((3, 4), np.int64)
            wt = np.zeros(3, np.float32)
            for k, rect in enumerate(feat.find("rects")):
                *xywh, weight = rect.text.split()
                r[k] = [int(v) for v in xywh]
                wt[k] = np.float32(float(weight))
            rects.append(r)
            weights.append(wt)
        s = np.array(stumps, dtype=np.float64).reshape(-1, 4)
        return cls(int(root.findtext("width")), int(root.findtext("height")), np.array(sizes, np.int64),
                   np.array(stage_thr, np.float32), s[:, 0].astype(np.int64), s[:, 1].astype(np.float32),
                   s[:, 2].astype(np.float32), s[:, 3].astype(np.float32), np.array(rects).reshape(-1, 3, 4),
                   np.array(weights, np.float32).reshape(-1, 3))

    def _scales(self, shape: tuple[int, int], scale_factor: float) -> list[np.float32]:
        h, w = shape
        out, factor = [], 1.0
        while True:
            if round(self.width * factor) > w or round(self.height * factor) > h:
                return out
            out.append(np.float32(factor))
            factor *= scale_factor

    def _corner_offsets(self, stride: int) -> np.ndarray:
        """Flat offsets ``[F, 3, 4]`` of the corners (x, y), (x+w, y), (x, y+h), (x+w, y+h) of every
        feature rect in an integral image of row length ``stride``."""
        x, y, w, h = (self.rects[..., k] for k in range(4))
        return np.stack([y * stride + x, y * stride + x + w, (y + h) * stride + x, (y + h) * stride + x + w], -1)

    def _stage_results(self, ii: np.ndarray, sq: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """OpenCV's ``runAt`` result for the windows at rows ``ys`` x columns ``xs`` (evenly spaced from
        0) of one scale's integral images ``ii``, ``sq`` ``[H + 1, W + 1]``: ``[len(ys), len(xs)]``,
        1 accepted, ``-k`` rejected at stage k (0 at the first stage), -1 for a flat window (below
        OpenCV's variance limit). Feature sums are float32 in OpenCV's order, stage sums float64 in
        stump order. Stages that most windows reach are computed on strided views of the whole
        grid, later ones by gathering the surviving windows."""
        step = int(ys[1] - ys[0]) if len(ys) > 1 else int(xs[1] - xs[0]) if len(xs) > 1 else 1
        ny, nx = len(ys), len(xs)

        def dense(img, x, y, w, h):  # rect sums of every window, ``[ny * nx]``
            def at(dy, dx):
                return img[dy:dy + step * (ny - 1) + 1:step, dx:dx + step * (nx - 1) + 1:step]
            return (at(y, x) - at(y, x + w) - at(y + h, x) + at(y + h, x + w)).ravel()

        ww, wh = self.width - 2, self.height - 2  # normrect = (1, 1, width - 2, height - 2)
        valsum = dense(ii, 1, 1, ww, wh).astype(np.float64)
        valsqsum = dense(sq, 1, 1, ww, wh).astype(np.float64)
        area = float(ww * wh)
        nf = area * valsqsum - valsum * valsum
        positive = nf > 0
        norm = np.ones(ny * nx, np.float32)
        norm[positive] = (1.0 / np.sqrt(nf[positive])).astype(np.float32)
        ok = positive & (area * norm.astype(np.float64) < 1e-1)
        result = np.full(ny * nx, -1, np.int64)
        active = np.nonzero(ok)[0]
        stride = ii.shape[1]
        flat = ii.ravel()
        base = (ys[:, None] * stride + xs[None, :]).ravel()
        offsets = self._corner_offsets(stride)
        first = 0
        for stage, n in enumerate(self.stage_sizes):
            stumps = slice(first, first + int(n))
            first += int(n)
            # whole-grid views vs gathering the survivors: rough costs (us) measured on a CPU
            if n * (25 + 0.015 * ny * nx) < 60 + 0.25 * n * len(active):
                total = np.zeros(ny * nx, np.float64)
                for j in range(stumps.start, stumps.stop):
                    (r0, r1, r2), (w0, w1, w2) = self.rects[self.feature[j]], self.weights[self.feature[j]]
                    ret = w0 * dense(ii, *r0).astype(np.float32) + w1 * dense(ii, *r1).astype(np.float32)
                    if w2 != 0:
                        ret = ret + w2 * dense(ii, *r2).astype(np.float32)
                    total += np.where(ret * norm < self.threshold[j], self.left[j], self.right[j]).astype(np.float64)
                total = total[active]
            else:
                feats = self.feature[stumps]
                ofs, wts = offsets[feats], self.weights[feats]  # [n, 3, 4], [n, 3]
                total = np.empty(len(active), np.float64)
                chunk = max(1, (1 << 21) // (int(n) * 12))
                for c in range(0, len(active), chunk):
                    idx = active[c:c + chunk]
                    v = flat[base[idx][:, None, None, None] + ofs[None]]  # [A, n, 3, 4]
                    sums = (v[..., 0] - v[..., 1] - v[..., 2] + v[..., 3]).astype(np.float32)
                    ret = wts[None, :, 0] * sums[..., 0] + wts[None, :, 1] * sums[..., 1]
                    ret = ret + wts[None, :, 2] * sums[..., 2]  # + 0 for two-rect features: unchanged
                    leaf = np.where(ret * norm[idx][:, None] < self.threshold[None, stumps],
                                    self.left[None, stumps], self.right[None, stumps])
                    total[c:c + chunk] = np.cumsum(leaf.astype(np.float64), axis=1)[:, -1]  # in stump order
            failed = total < np.float64(self.stage_thresholds[stage])
            result[active[failed]] = -stage
            active = active[~failed]
            if not len(active):
                break
        result[active] = 1
        return result.reshape(ny, nx)

    def candidates(self, gray: np.ndarray, scale_factor: float = 1.1) -> list[tuple[int, int, int, int]]:
        """OpenCV's ``detectMultiScaleNoGrouping`` on a uint8 grey image: every accepted window
        ``(x, y, w, h)`` in the order of a single-threaded run (scale, row, column)."""
        h, w = gray.shape
        scales = self._scales((h, w), scale_factor)
        out: list[tuple[int, int, int, int]] = []
        nstripes = None
        for sc in scales:
            sw, sh = int(_round_half_even(np.float32(w) / sc)), int(_round_half_even(np.float32(h) / sc))
            step = 1 if sc >= 2 else 2
            work_w, work_h = max(sw + 1 - self.width, 0), max(sh + 1 - self.height, 0)
            if nstripes is None:  # from the first scale's working width, as OpenCV
                nstripes = max(math.ceil(work_w / 32.0), 0)
            if nstripes == 0:
                break
            stripe = max((work_h // step + nstripes - 1) // nstripes, 1) * step
            ys_row = np.arange(0, min(nstripes * stripe, work_h), step)
            xs_row = np.arange(0, work_w, step)
            if not len(ys_row) or not len(xs_row):
                continue
            img = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR_EXACT)
            ii = np.zeros((sh + 1, sw + 1), np.int64)
            ii[1:, 1:] = img.astype(np.int64).cumsum(0).cumsum(1)
            sq = np.zeros((sh + 1, sw + 1), np.int64)
            sq[1:, 1:] = (img.astype(np.int64) ** 2).cumsum(0).cumsum(1)
            res = self._stage_results(ii, sq, ys_row, xs_row)
            win_w = int(_round_half_even(np.float32(self.width) * sc))
            win_h = int(_round_half_even(np.float32(self.height) * sc))
            for r, c in zip(*np.nonzero(res == 1)):
                # OpenCV skips the next column after a window rejected at the first stage: a window
                # is evaluated iff the run of such rejections just before it has even length.
                k = 0
                while c - k - 1 >= 0 and res[r, c - k - 1] == 0:
                    k += 1
                if k % 2 == 0:
                    out.append((int(_round_half_even(np.float32(xs_row[c]) * sc)),
                                int(_round_half_even(np.float32(ys_row[r]) * sc)), win_w, win_h))
        return out

    def detect(self, image: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 3) -> np.ndarray:
        """``cv2.CascadeClassifier.detectMultiScale(image, scale_factor, min_neighbors)``: ``[K, 4]``
        int32 boxes ``(x, y, w, h)``; a BGR image is converted to grey as OpenCV does."""
        if image.dtype != np.uint8:
            raise MetricError(f"Haar detection needs a uint8 image, got {image.dtype}")
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        rects = group_rectangles(self.candidates(gray, scale_factor), min_neighbors, 0.2)
        h, w = gray.shape
        clipped = []
        for x, y, rw, rh in rects:  # clipObjects: the intersection with the image, empty ones dropped
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + rw, w), min(y + rh, h)
            if x1 > x0 and y1 > y0:
                clipped.append((x0, y0, x1 - x0, y1 - y0))
        return np.array(clipped, np.int32).reshape(-1, 4)


def _partition(rects: Sequence[tuple], similar: Callable) -> list[int]:
    """``cv::partition``: union-find class labels, numbered in order of first appearance."""
    n = len(rects)
    parent, rank = [-1] * n, [0] * n

    def root_of(k):
        while parent[k] >= 0:
            k = parent[k]
        return k

    for i in range(n):
        root = root_of(i)
        for j in range(n):
            if i == j or not similar(rects[i], rects[j]):
                continue
            root2 = root_of(j)
            if root2 != root:
                if rank[root] > rank[root2]:
                    parent[root2] = root
                else:
                    parent[root] = root2
                    rank[root2] += rank[root] == rank[root2]
                    root = root2
                for k in (j, i):  # path compression
                    while parent[k] >= 0:
                        parent[k], k = root, parent[k]
    labels, classes = [], {}
    for i in range(n):
        labels.append(classes.setdefault(root_of(i), len(classes)))
    return labels


def group_rectangles(rects: Sequence[tuple[int, int, int, int]], group_threshold: int,
                     eps: float = 0.2) -> list[tuple[int, int, int, int]]:
    """``cv::groupRectangles(rects, group_threshold, eps)``: clusters of similar boxes averaged,
    clusters with at most ``group_threshold`` members dropped, and so are boxes inside a bigger
    cluster's box."""
    if group_threshold <= 0 or not rects:
        return list(rects)

    def similar(a, b):
        delta = eps * (min(a[2], b[2]) + min(a[3], b[3])) * 0.5
        return (abs(a[0] - b[0]) <= delta and abs(a[1] - b[1]) <= delta
                and abs(a[0] + a[2] - b[0] - b[2]) <= delta and abs(a[1] + a[3] - b[1] - b[3]) <= delta)

    labels = _partition(rects, similar)
    ncls = max(labels) + 1
    sums = np.zeros((ncls, 4), np.int64)
    counts = np.zeros(ncls, np.int64)
    for lab, r in zip(labels, rects):
        sums[lab] += r
        counts[lab] += 1
    avg = [tuple(int(_round_half_even(np.float32(v) * (np.float32(1) / np.float32(c)))) for v in s)
           for s, c in zip(sums, counts)]
    out = []
    for i, (r1, n1) in enumerate(zip(avg, counts)):
        if n1 <= group_threshold:
            continue
        inside = False
        for j, (r2, n2) in enumerate(zip(avg, counts)):
            if j == i or n2 <= group_threshold:
                continue
            dx, dy = round(r2[2] * eps), round(r2[3] * eps)
            if (r1[0] >= r2[0] - dx and r1[1] >= r2[1] - dy and r1[0] + r1[2] <= r2[0] + r2[2] + dx
                    and r1[1] + r1[3] <= r2[1] + r2[3] + dy and (n2 > max(3, n1) or n1 < 3)):
                inside = True
                break
        if not inside:
            out.append(r1)
    return out


def find_cascades(haar_dir: Optional[PathLike] = None) -> tuple[Path, Path]:
    """Paths of the face and eye cascades: in ``haar_dir`` (``.xml`` or ``.xml.gz``), else in
    ``cv2.data.haarcascades``; a MetricError naming the files and the flag otherwise."""
    folders = [Path(haar_dir)] if haar_dir is not None else []
    data = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if haar_dir is None and data:
        folders.append(Path(data))
    for folder in folders:
        found = []
        for name in (FACE_CASCADE, EYE_CASCADE):
            hits = [folder / n for n in (name, name + ".gz") if (folder / n).is_file()]
            found.append(hits[0] if hits else None)
        if all(found):
            return found[0], found[1]
    where = f" (not in {haar_dir})" if haar_dir is not None else ""
    raise MetricError(MISSING_CASCADES + where)


# ------------------------------------------------------------------------ DeepFace's face pipeline
def _euclidean(a, b) -> float:
    d = np.array(a) - np.array(b)
    return np.sqrt(np.sum(np.multiply(d, d)))


def align_face(face: np.ndarray, eyes: np.ndarray, sort_eyes: bool = True) -> np.ndarray:
    """DeepFace's ``align_face`` + ``alignment_procedure`` on a BGR face crop ``[h, w, 3]`` given
    the eye detections ``[K, 4]`` in it: rotated with PIL (nearest), or unchanged with < 2 eyes."""
    eyes = [tuple(int(v) for v in e) for e in eyes]
    if sort_eyes:
        eyes = sorted(eyes, key=lambda v: abs((v[0] - v[2]) * (v[1] - v[3])), reverse=True)
    if len(eyes) < 2:
        return face
    e1, e2 = eyes[0], eyes[1]
    left, right = (e1, e2) if e1[0] < e2[0] else (e2, e1)
    (lx, ly) = (int(left[0] + (left[2] / 2)), int(left[1] + (left[3] / 2)))
    (rx, ry) = (int(right[0] + (right[2] / 2)), int(right[1] + (right[3] / 2)))
    if ly > ry:
        third, direction = (rx, ly), -1
    else:
        third, direction = (lx, ry), 1
    a = _euclidean((lx, ly), third)
    b = _euclidean((rx, ry), third)
    c = _euclidean((rx, ry), (lx, ly))
    if b != 0 and c != 0:
        angle = np.arccos((b * b + c * c - a * a) / (2 * b * c))
        angle = (angle * 180) / math.pi
        if direction == -1:
            angle = 90 - angle
        face = np.array(Image.fromarray(face).rotate(direction * angle))
    return face


def preprocess_face(face: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """DeepFace's ``preprocess_face`` after detection: fit into ``size`` keeping the aspect
    (``cv2.resize`` bilinear), pad black (centred), float32 in [0, 1]; ``[size, size, 3]`` BGR."""
    if face.shape[0] > 0 and face.shape[1] > 0:
        factor = min(size / face.shape[0], size / face.shape[1])
        face = cv2.resize(face, (int(face.shape[1] * factor), int(face.shape[0] * factor)))
        d0, d1 = size - face.shape[0], size - face.shape[1]
        face = np.pad(face, ((d0 // 2, d0 - d0 // 2), (d1 // 2, d1 - d1 // 2), (0, 0)), "constant")
    if face.shape[0:2] != (size, size):
        face = cv2.resize(face, (size, size))
    pixels = face.astype(np.float32)  # Keras img_to_array
    pixels /= 255
    return pixels


class DeepFaceDetector:
    """DeepFace's OpenCV backend (``detector_backend="opencv"``, ``align=True``) with
    :class:`HaarCascade`. ``sort_eyes``: DeepFace >= 0.0.74 sorts the eye detections (True);
    0.0.69-0.0.73 take the first two as OpenCV returns them."""

    def __init__(self, haar_dir: Optional[PathLike] = None, sort_eyes: bool = True):
        face, eye = find_cascades(haar_dir)
        self.face, self.eye = HaarCascade.load(face), HaarCascade.load(eye)
        self.sort_eyes = sort_eyes

    def faces(self, bgr: np.ndarray) -> np.ndarray:
        """Face boxes ``[K, 4]`` (x, y, w, h) as ``detectMultiScale(bgr, 1.1, 10)``."""
        return self.face.detect(bgr, 1.1, 10)

    def detect(self, bgr: np.ndarray) -> Optional[np.ndarray]:
        """The aligned BGR crop of the first face, or None when no face is found (DeepFace aligns
        every face found and fails when any alignment fails)."""
        crops = []
        for x, y, w, h in self.faces(bgr):
            face = bgr[int(y):int(y + h), int(x):int(x + w)]
            try:
                eyes = self.eye.detect(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY), 1.1, 10)
                crops.append(align_face(face, eyes, self.sort_eyes))
            except (cv2.error, ValueError, MetricError):
                return None
        return crops[0] if crops else None

    def preprocess(self, bgr: np.ndarray) -> Optional[np.ndarray]:
        """The network input ``[112, 112, 3]`` (BGR, [0, 1]) of an image, or None without a face."""
        face = self.detect(bgr)
        if face is None or face.shape[0] == 0 or face.shape[1] == 0:
            return None
        return preprocess_face(face)


# ------------------------------------------------------------------------------ ArcFace in PyTorch
class _KerasBN(nn.Module):
    """Keras ``BatchNormalization`` at inference over dim 1: ``(x - mean) / sqrt(var + eps) * gamma + beta``."""

    def __init__(self, n: int, eps: float = BN_EPS):
        super().__init__()
        self.eps = eps
        for name, value in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0), ("moving_variance", 1.0)):
            self.register_buffer(name, torch.full((n,), value))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.moving_mean, self.moving_variance, self.gamma, self.beta, False, 0.0, self.eps)


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)  # ZeroPadding2D(1) + valid conv


def keras_layers() -> list[tuple[str, str, int, int]]:
    """The weighted layers of DeepFace's ResNet34 part: ``(Keras name, kind, in, out)``, kind one
    of ``conv3``, ``conv1``, ``bn``, ``prelu`` (the head is :data:`HEAD_LAYERS`)."""
    out = [("conv1_conv", "conv3", 3, 64), ("conv1_bn", "bn", 64, 64), ("conv1_prelu", "prelu", 64, 64)]
    cin = 64
    for prefix, filters, blocks in STACKS:
        for b in range(1, blocks + 1):
            n = f"{prefix}_block{b}"
            if b == 1:
                out += [(n + "_0_conv", "conv1", cin, filters), (n + "_0_bn", "bn", filters, filters)]
            out += [(n + "_1_bn", "bn", cin, cin), (n + "_1_conv", "conv3", cin, filters),
                    (n + "_2_bn", "bn", filters, filters), (n + "_1_prelu", "prelu", filters, filters),
                    (n + "_2_conv", "conv3", filters, filters), (n + "_3_bn", "bn", filters, filters)]
            cin = filters
    return out


HEAD_LAYERS = (("head_bn", "bn", 512, 512), ("dense", "dense", FLAT_SIZE, EMBEDDING_SIZE),
               ("embedding", "bn", EMBEDDING_SIZE, EMBEDDING_SIZE))


class ArcFaceResNet34(nn.Module):
    """DeepFace's ArcFace network: ``[B, 3, 112, 112]`` BGR in [0, 1] -> ``[B, 512]`` embeddings.
    Modules are named after the Keras layers (``layers["conv2_block1_0_conv"]``, ...)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleDict()
        for name, kind, cin, cout in keras_layers():
            stride = 2 if name.endswith(("block1_0_conv", "block1_2_conv")) else 1
            self.layers[name] = (_conv(cin, cout, 3, stride) if kind == "conv3" else _conv(cin, cout, 1, stride)
                                 if kind == "conv1" else _KerasBN(cout) if kind == "bn" else nn.PReLU(cout))
        self.head_bn = _KerasBN(512)
        self.dense = nn.Linear(FLAT_SIZE, EMBEDDING_SIZE)
        self.embedding = _KerasBN(EMBEDDING_SIZE)

    def forward(self, x: Tensor) -> Tensor:
        L = self.layers
        x = L["conv1_prelu"](L["conv1_bn"](L["conv1_conv"](x)))
        for prefix, _, blocks in STACKS:
            for b in range(1, blocks + 1):
                n = f"{prefix}_block{b}"
                shortcut = L[n + "_0_bn"](L[n + "_0_conv"](x)) if b == 1 else x
                y = L[n + "_1_conv"](L[n + "_1_bn"](x))
                y = L[n + "_1_prelu"](L[n + "_2_bn"](y))
                x = shortcut + L[n + "_3_bn"](L[n + "_2_conv"](y))
        x = self.head_bn(x).permute(0, 2, 3, 1).flatten(1)  # Keras flattens NHWC
        return self.embedding(self.dense(x))


def _expected_shapes(kind: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    if kind == "conv3":
        return {"kernel": (3, 3, cin, cout)}
    if kind == "conv1":
        return {"kernel": (1, 1, cin, cout)}
    if kind == "prelu":
        return {"alpha": (1, 1, cout)}
    if kind == "dense":
        return {"kernel": (cin, cout), "bias": (cout,)}
    return {k: (cout,) for k in ("gamma", "beta", "moving_mean", "moving_variance")}


def _h5_weights(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """The weights ``{Keras layer: {short name: float32 array}}`` of DeepFace's ArcFace in a Keras
    HDF5 weight file (``save_weights``, or a whole-model ``save``), keyed by :func:`keras_layers`
    names and :data:`HEAD_LAYERS` names. Names and shapes are checked before any data is read."""
    try:
        import h5py
    except ImportError:
        raise MetricError("reading arcface_weights.h5 needs h5py: pip install 'h5py>=3.8'") from None

    def text(v) -> str:
        return v.decode("utf-8") if isinstance(v, bytes) else str(v)

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in group.attrs:
                raise MetricError(f"{path}: not a Keras HDF5 weight file (no layer_names attribute)")
            found: dict[str, dict[str, "h5py.Dataset"]] = {}
            for name in map(text, group.attrs["layer_names"]):
                layer = group[name]
                entries = {}
                for wn in map(text, layer.attrs.get("weight_names", [])):
                    ds = layer[wn]
                    if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "f":
                        raise MetricError(f"{path}: weight {name}/{wn} is not a float array")
                    entries[wn.split("/")[-1].split(":")[0]] = ds
                if entries:
                    found[name] = entries
            resnet = {n for n, *_ in keras_layers()}
            head = [n for n in found if n not in resnet]
            dense = [n for n in head if "kernel" in found[n]]
            bns = [n for n in head if "gamma" in found[n]]
            emb = "embedding" if "embedding" in bns else (bns[-1] if bns else None)
            other_bn = [n for n in bns if n != emb]
            if len(head) != 3 or len(dense) != 1 or len(other_bn) != 1:
                raise MetricError(f"{path}: not DeepFace's ArcFace weights (expected the ResNet34 layers plus a batch "
                                  f"norm, a dense layer and 'embedding'; the other layers are {head})")
            sources = {n: n for n in resnet}
            sources.update(zip((h[0] for h in HEAD_LAYERS), (other_bn[0], dense[0], emb)))
            out = {}
            for name, kind, cin, cout in keras_layers() + list(HEAD_LAYERS):
                have = found.get(sources[name])
                want = _expected_shapes(kind, cin, cout)
                got = None if have is None else {k: tuple(v.shape) for k, v in have.items()}
                if got != want:
                    raise MetricError(f"{path}: layer {sources[name]} holds {got}, DeepFace's ArcFace needs {want}")
                out[name] = {k: np.asarray(v[()], dtype=np.float32) for k, v in have.items()}
            return out
    except MetricError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise MetricError(f"{path}: cannot read as a Keras HDF5 weight file ({str(e).splitlines()[0]})") from None


def load_deepface_arcface(path: Optional[PathLike] = None, device: Union[str, torch.device] = "cpu"
                          ) -> ArcFaceResNet34:
    """:class:`ArcFaceResNet34` (eval mode) with the weights of DeepFace's ``arcface_weights.h5``.
    ``path`` None: ``$DEEPFACE_HOME/.deepface/weights/arcface_weights.h5`` (DeepFace's cache;
    ``DEEPFACE_HOME`` defaults to the home folder). Nothing is downloaded."""
    if path is None:
        path = Path(os.getenv("DEEPFACE_HOME", str(Path.home()))) / ".deepface" / "weights" / WEIGHTS_FILE
        if not path.is_file():
            raise MetricError(MISSING_WEIGHTS)
    path = Path(path)
    if not path.is_file():
        raise MetricError(f"DeepFace ArcFace weights not found: {path} ({MISSING_WEIGHTS})")
    weights = _h5_weights(path)
    model = ArcFaceResNet34()
    modules = dict(model.layers.items())
    modules.update({name: getattr(model, name) for name, *_ in HEAD_LAYERS})
    with torch.no_grad():
        for name, kind, _, _ in keras_layers() + list(HEAD_LAYERS):
            module, have = modules[name], weights[name]
            if kind in ("conv3", "conv1"):
                module.weight.copy_(torch.from_numpy(have["kernel"]).permute(3, 2, 0, 1))
            elif kind == "prelu":
                module.weight.copy_(torch.from_numpy(have["alpha"]).reshape(-1))
            elif kind == "dense":
                module.weight.copy_(torch.from_numpy(have["kernel"]).t())
                module.bias.copy_(torch.from_numpy(have["bias"]))
            else:
                for k in ("gamma", "beta", "moving_mean", "moving_variance"):
                    getattr(module, k).copy_(torch.from_numpy(have[k]))
    return model.eval().to(device)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """DeepFace's ``findCosineDistance`` in float64: ``1 - a.b / (sqrt(a.a) sqrt(b.b))``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(1 - (np.matmul(np.transpose(a), b) / (np.sqrt(np.sum(a * a)) * np.sqrt(np.sum(b * b)))))


def read_bgr(path: PathLike) -> np.ndarray:
    """``cv2.imread`` (BGR uint8), as DeepFace's ``load_image``; an ImageError for a missing or
    unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    img = cv2.imread(str(path))
    if img is None:
        raise ImageError(f"cannot read {path} as an image")
    return img


class DeepFaceArcFace:
    """``DeepFace.verify(img1, img2, model_name="ArcFace")`` without TensorFlow.

    ``weights``: DeepFace's ``arcface_weights.h5`` (see :func:`load_deepface_arcface`);
    ``haar_dir``: the cascade folder (:func:`find_cascades`); ``sort_eyes``: DeepFace >= 0.0.74."""

    def __init__(self, weights: Optional[PathLike] = None, haar_dir: Optional[PathLike] = None,
                 device: Union[str, torch.device] = "cpu", sort_eyes: bool = True):
        self.net = load_deepface_arcface(weights, device)
        self.detector = DeepFaceDetector(haar_dir, sort_eyes)
        self.device = torch.device(device)

    @torch.no_grad()
    def embed(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings ``[N, 512]`` (float32) of preprocessed inputs ``[112, 112, 3]``."""
        if not len(inputs):
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        x = torch.from_numpy(np.stack(inputs)).permute(0, 3, 1, 2).to(self.device)
        return self.net(x).float().cpu().numpy()

    def represent(self, image: Union[PathLike, np.ndarray]) -> Optional[np.ndarray]:
        """``DeepFace.represent``: the 512-d embedding of a path or BGR uint8 array, None without a face."""
        bgr = image if isinstance(image, np.ndarray) else read_bgr(image)
        pre = self.detector.preprocess(bgr)
        return None if pre is None else self.embed([pre])[0]

    def verify(self, img1: Union[PathLike, np.ndarray], img2: Union[PathLike, np.ndarray]) -> Optional[float]:
        """The cosine distance of two faces, None when a face is not detected in either image."""
        return self.verify_many([(img1, img2)])[0]

    def verify_many(self, pairs: Sequence[tuple], batch_size: int = 32) -> list[Optional[float]]:
        """:meth:`verify` for many pairs; the networks run on batches of ``batch_size`` pairs."""
        out: list[Optional[float]] = []
        for start in range(0, len(pairs), batch_size):
            chunk, inputs = [], []
            for a, b in pairs[start:start + batch_size]:
                pa = self.detector.preprocess(a if isinstance(a, np.ndarray) else read_bgr(a))
                pb = self.detector.preprocess(b if isinstance(b, np.ndarray) else read_bgr(b))
                chunk.append(pa is not None and pb is not None)
                if chunk[-1]:
                    inputs += [pa, pb]
            emb = iter(self.embed(inputs))
            out += [cosine_distance(next(emb), next(emb)) if ok else None for ok in chunk]
        return out


class DeepFaceLibrary:
    """The ``deepface`` package itself (optional, with TensorFlow): ``DeepFace.verify`` with
    ``model_name="ArcFace"`` and the weight file ``weights``, placed in a temporary DeepFace home
    so that nothing is downloaded."""

    def __init__(self, weights: Optional[PathLike] = None):
        if weights is None or not Path(weights).is_file():
            raise MetricError(MISSING_WEIGHTS if weights is None
                              else f"DeepFace ArcFace weights not found: {weights} ({MISSING_WEIGHTS})")
        self._home = tempfile.TemporaryDirectory(prefix="deepface_home_")
        folder = Path(self._home.name) / ".deepface" / "weights"
        folder.mkdir(parents=True)
        (folder / WEIGHTS_FILE).symlink_to(Path(weights).resolve())
        with self._home_env():
            try:
                from deepface import DeepFace
            except ImportError:
                raise MetricError("backend 'deepface' needs the deepface package (pip install deepface "
                                  "tensorflow-cpu); the default backend 'torch' does not") from None
            self._deepface = DeepFace

    @contextlib.contextmanager
    def _home_env(self):
        before = os.environ.get("DEEPFACE_HOME")
        os.environ["DEEPFACE_HOME"] = self._home.name
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("DEEPFACE_HOME", None)
            else:
                os.environ["DEEPFACE_HOME"] = before

    def verify(self, img1: PathLike, img2: PathLike) -> Optional[float]:
        """DeepFace's distance, None when DeepFace cannot detect a face (its ValueError)."""
        for p in (img1, img2):
            if not Path(p).is_file():
                raise ImageError(f"image not found: {p}")
        with self._home_env():
            try:
                return float(self._deepface.verify(str(img1), str(img2), model_name="ArcFace")["distance"])
            except ValueError:
                return None

    def verify_many(self, pairs: Sequence[tuple], batch_size: int = 32) -> list[Optional[float]]:
        """:meth:`verify` for each pair, one at a time as the release (``batch_size`` is not used)."""
        return [self.verify(a, b) for a, b in pairs]


BACKENDS = ("torch", "deepface")


def build_verifier(weights: Optional[PathLike] = None, backend: str = "torch", haar_dir: Optional[PathLike] = None,
                   device: Union[str, torch.device] = "cpu", sort_eyes: bool = True):
    """The pair verifier of a backend: ``torch`` (:class:`DeepFaceArcFace`, default) or ``deepface``
    (:class:`DeepFaceLibrary`, needs the optional deepface package)."""
    if backend == "torch":
        return DeepFaceArcFace(weights, haar_dir, device, sort_eyes)
    if backend == "deepface":
        return DeepFaceLibrary(weights)
    raise MetricError(f"unknown Arc-dis backend {backend!r}; valid: {', '.join(BACKENDS)}")


# -------------------------------------------------------------------------- the release's Arc-dis
def release_list_name(attribute: str, swap_bushy_arched: bool = True) -> str:
    """The evaluation list of an edit in the release's table (``beard`` -> ``no_beard``, ...).
    ``swap_bushy_arched=True`` keeps the release's entries ``bushy -> arched`` and
    ``arched -> bushy`` (the paper's numbers); False uses the lists the edits are made on
    (``no_bushy``, ``no_arched``)."""
    if attribute not in RELEASE_LISTS:
        raise MetricError(f"the release has no Arc-dis list for {attribute!r}; valid: {', '.join(RELEASE_LISTS)}")
    if not swap_bushy_arched and attribute in UNSWAPPED_LISTS:
        return UNSWAPPED_LISTS[attribute]
    return RELEASE_LISTS[attribute]


def read_id_list(path: PathLike) -> list[str]:
    """The stripped, non-empty lines of a list file."""
    path = Path(path)
    if not path.is_file():
        raise MetricError(f"list not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def release_exclusion(ids: Sequence[str], excluded: Iterable[str], pop_quirk: bool = True) -> list[str]:
    """``ids`` without the ``excluded`` ones. ``pop_quirk=True`` reproduces the release's loop
    ``for i, name in enumerate(ids): if name in excluded: ids.pop(i)``: after a removal the next
    id takes index i and is never looked at, so a listed id right after a removed one stays."""
    excluded = set(excluded)
    if not pop_quirk:
        return [n for n in ids if n not in excluded]
    kept, i = list(ids), 0
    while i < len(kept):
        if kept[i] in excluded:
            del kept[i]
        i += 1
    return kept


def find_not_detected(lists_dir: PathLike, method: str) -> Path:
    """``<lists_dir>/metrics/not_detecetd/<method>.txt`` (the reference layout) or
    ``<lists_dir>/not_detecetd/<method>.txt`` (the release's ``data/``)."""
    for sub in NOT_DETECTED_DIRS:
        p = Path(lists_dir) / sub / f"{method}.txt"
        if p.is_file():
            return p
    raise MetricError(f"no not_detecetd/{method}.txt under {lists_dir} (the release's list of faces excluded from "
                      "Arc-dis); pass exclude_listed=False to keep every face")


@dataclass
class ArcDisResult:
    """The release's Arc-dis over one list: ``mean`` distance over ``n_used`` pairs;
    ``n_dropped_undetected`` pairs without a detected face in both images;
    ``n_excluded_by_list`` ids removed by the not_detecetd list; ``n_listed`` ids in the list."""

    mean: float
    n_used: int
    n_dropped_undetected: int
    n_excluded_by_list: int
    n_listed: int
    list_file: str
    distances: dict[str, Optional[float]]

    def release_lines(self) -> list[str]:
        """What the release's script prints (its "Similarity" is the mean distance)."""
        return [f"Total faces: {self.n_used + self.n_dropped_undetected}",
                f"Not detected: {self.n_dropped_undetected}",
                f"Similarity on detected faces: {self.mean}"]


def release_arc_dis(real_dir: PathLike, fake_dir: PathLike, attribute: str, lists_dir: PathLike,
                    method: str = "iafaces", weights: Optional[PathLike] = None, *,
                    swap_bushy_arched: bool = True, exclude_listed: bool = True, pop_quirk: bool = True,
                    backend: str = "torch", haar_dir: Optional[PathLike] = None,
                    device: Union[str, torch.device] = "cpu", sort_eyes: bool = True,
                    verifier=None, progress: Optional[Callable[[int], None]] = None) -> ArcDisResult:
    """The release's ``arc_dis.py --real REAL --fake FAKE --attr ATTRIBUTE --method METHOD``.

    Ids come from ``<lists_dir>/attr_lists/<release_list_name(attribute)>.txt``; with
    ``exclude_listed`` the ids of the method's not_detecetd list are removed (``pop_quirk``: the
    release's removal loop, see :func:`release_exclusion`). Each id is the pair
    ``real_dir/<id>.png``, ``fake_dir/<id>.png``; pairs without a detected face are dropped and
    counted; the mean runs over the rest in list order. A missing image is an error (the release
    would count it as undetected). ``verifier``: a ready :func:`build_verifier` (reused across
    calls); ``progress(n)`` is called after each chunk of pairs."""
    list_file = Path(lists_dir) / "attr_lists" / f"{release_list_name(attribute, swap_bushy_arched)}.txt"
    ids = read_id_list(list_file)
    kept = release_exclusion(ids, read_id_list(find_not_detected(lists_dir, method)), pop_quirk) \
        if exclude_listed else list(ids)
    pairs = []
    for name in kept:
        stem = name.split(".")[0]
        pair = (Path(real_dir) / f"{stem}.png", Path(fake_dir) / f"{stem}.png")
        for p in pair:
            if not p.is_file():
                raise MetricError(f"Arc-dis: {p} is missing (each id of {list_file.name} needs <id>.png in both "
                                  "the real and the fake folder)")
        pairs.append(pair)
    verifier = verifier or build_verifier(weights, backend, haar_dir, device, sort_eyes)
    values: list[Optional[float]] = []
    chunk = 32
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        values += verifier.verify_many(part)
        if progress is not None:
            progress(len(part))
    used = [d for d in values if d is not None]
    if not used:
        raise MetricError(f"Arc-dis: no face was detected in any of the {len(kept)} pairs of {list_file.name}")
    total = 0.0
    for d in used:  # the release's running sum, in list order
        total += d
    return ArcDisResult(total / len(used), len(used), len(kept) - len(used), len(ids) - len(kept), len(ids),
                        str(list_file), dict(zip(kept, values)))


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Arc-dis as the IA-FaceS release computes it (DeepFace ArcFace, OpenCV detector "
                                   "with eye alignment, cosine distance), without TensorFlow.")
    p.add_argument("--real", required=True, help="folder of the reconstructions, <id>.png")
    p.add_argument("--fake", required=True, help="folder of the edited images, <id>.png")
    p.add_argument("--attr", required=True, choices=sorted(RELEASE_LISTS), help="the edit")
    p.add_argument("--lists", required=True,
                   help="the release's evaluation lists: a folder with attr_lists/ and not_detecetd/ (or "
                        "metrics/not_detecetd/)")
    p.add_argument("--method", default="iafaces", help="which not_detecetd/<method>.txt to exclude (default iafaces)")
    p.add_argument("--deepface_arcface", default=None, metavar="PATH",
                   help=f"DeepFace's {WEIGHTS_FILE} (default: $DEEPFACE_HOME/.deepface/weights/{WEIGHTS_FILE})")
    p.add_argument("--deepface_haar", default=None, metavar="DIR",
                   help=f"folder with {FACE_CASCADE} and {EYE_CASCADE} (.xml or .xml.gz; default cv2.data)")
    p.add_argument("--no_swap_bushy_arched", action="store_true",
                   help="evaluate bushy on no_bushy and arched on no_arched (the release swaps them)")
    p.add_argument("--keep_listed", action="store_true", help="do not remove the not_detecetd ids")
    p.add_argument("--no_pop_quirk", action="store_true",
                   help="remove every not_detecetd id (the release's loop leaves some in)")
    p.add_argument("--unsorted_eyes", action="store_true", help="DeepFace 0.0.69-0.0.73 eye order (no sorting)")
    p.add_argument("--backend", default="torch", choices=BACKENDS,
                   help="torch (default): this port; deepface: the deepface package itself (optional)")
    p.add_argument("--device", default="cpu")
    return p


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    bar = progress(0, "Arc-dis", "pair")
    try:
        result = release_arc_dis(args.real, args.fake, args.attr, args.lists, args.method, args.deepface_arcface,
                                 swap_bushy_arched=not args.no_swap_bushy_arched, exclude_listed=not args.keep_listed,
                                 pop_quirk=not args.no_pop_quirk, backend=args.backend, haar_dir=args.deepface_haar,
                                 device=args.device, sort_eyes=not args.unsorted_eyes, progress=bar.update)
    finally:
        bar.close()
    print(f"list {Path(result.list_file).name}: {result.n_listed} ids, {result.n_excluded_by_list} excluded by "
          f"not_detecetd/{args.method}.txt")
    print("\n".join(result.release_lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
