"""NVIDIA's CelebA-HQ attribute classifiers in PyTorch, and the release's attribute-accuracy count.

The IA-FaceS release scores CelebA-HQ edits with the 40 attribute classifiers that StyleGAN's
linear-separability metric uses (``celebahq-classifier-NN-<name>.pkl``, TensorFlow pickles of
``dnnlib.tflib.network.Network``). This module needs no TensorFlow:

* :func:`read_network_pickle` reads such a pickle with a restricted unpickler. Only the Network
  class, numpy arrays/scalars/dtypes (numeric kinds), ``collections.OrderedDict`` and (protocol 2)
  ``_codecs.encode`` to latin1 bytes resolve, each to a stand-in that only records data; every
  other global is refused with one line before it is called. Of the state only ``static_kwargs``,
  ``build_func_name`` and ``variables`` are used; the ``build_module_src`` stored in the file
  (Python source that dnnlib's loader executes) is never run.
* :class:`DBasic` is StyleGAN's ``D_basic`` (``training/networks_stylegan.py``), built from the
  pickle's keyword arguments with D_basic's defaults for the others; :meth:`DBasic.load_tf_variables`
  checks that the file holds exactly the variables those arguments create, with their shapes.
* :func:`release_attribute_accuracy` counts as the release's ``metrics/attr_acc.py`` does.

Input convention: NCHW float32 in [-1, 1] at the classifier's resolution (256 px for NVIDIA's
files). The output is one logit per image; ``softmax([logit, -logit])[1]`` is the probability
that the image has the file's attribute, so a negative logit means "has it" (the release's
published beard/bushy counts fall as a beard is added and rise as bushy eyebrows are added).
"""
from __future__ import annotations

import io
import math
import os
import pickle
import re
import sys
import tempfile
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from utils.cli import ArgumentParser, main_guard
from utils.device import resolve_device
from utils.errors import MetricError

PathLike = Union[str, os.PathLike]

#: The release's file names, ``celebahq-classifier-NN-<name>.pkl`` (``evaluation/utils/classifier.py``).
#: StyleGAN names file 27 ``no-beard``; the release renamed it ``beard`` (it still reads No_Beard).
CLASSIFIER_NAMES: tuple[str, ...] = (
    "male", "smiling", "attractive", "wavy-hair", "young", "5-o-clock-shadow", "arched-eyebrows",
    "bags-under-eyes", "bald", "bangs", "big-lips", "big-nose", "black-hair", "blond-hair", "blurry",
    "brown-hair", "bushy-eyebrows", "chubby", "double-chin", "eyeglasses", "goatee", "gray-hair",
    "heavy-makeup", "high-cheekbones", "mouth-slightly-open", "mustache", "narrow-eyes", "beard",
    "oval-face", "pale-skin", "pointy-nose", "receding-hairline", "rosy-cheeks", "sideburns",
    "straight-hair", "wearing-earrings", "wearing-hat", "wearing-lipstick", "wearing-necklace",
    "wearing-necktie",
)
#: The file the release calls ``beard``: StyleGAN's No_Beard classifier.
BEARD_INDEX = 27
STYLEGAN_BEARD_NAME = "no-beard"
#: The release classifies images in batches of this many and counts only whole batches.
RELEASE_BATCH = 100


def classifier_file_name(index: int, stylegan_name: bool = False) -> str:
    """``celebahq-classifier-NN-<name>.pkl`` of attribute ``index``: the release's name, or
    StyleGAN's (they differ only for 27: ``beard`` / ``no-beard``)."""
    name = STYLEGAN_BEARD_NAME if stylegan_name and index == BEARD_INDEX else CLASSIFIER_NAMES[index]
    return f"celebahq-classifier-{index:02d}-{name}.pkl"


def attribute_index(attribute: Union[int, str]) -> int:
    """The file number of ``attribute``: an index 0..39, a release name (``beard``,
    ``mouth-slightly-open``), StyleGAN's ``no-beard``, or a CelebA name (``Mouth_Slightly_Open``,
    ``No_Beard``); case and ``_``/``-`` do not matter."""
    if isinstance(attribute, (int, np.integer)) and not isinstance(attribute, bool):
        index = int(attribute)
    else:
        key = str(attribute).strip().lower().replace("_", "-")
        names = {n: i for i, n in enumerate(CLASSIFIER_NAMES)}
        names[STYLEGAN_BEARD_NAME] = BEARD_INDEX
        if key.isdigit():
            index = int(key)
        elif key in names:
            index = names[key]
        else:
            raise MetricError(f"unknown CelebA-HQ classifier attribute '{attribute}'; use 0..39 or one of "
                              f"{', '.join(CLASSIFIER_NAMES)}")
    if not 0 <= index < len(CLASSIFIER_NAMES):
        raise MetricError(f"CelebA-HQ classifier index {index} is out of range; the files are numbered 0..39")
    return index


def find_classifier_file(classifiers_dir: PathLike, index: int) -> Path:
    """The classifier file of ``index`` in ``classifiers_dir``: the release's name, else (file 27)
    StyleGAN's ``no-beard`` name; missing -> one line naming the file, its source and the flag."""
    folder = Path(classifiers_dir)
    for stylegan_name in (False, True):
        path = folder / classifier_file_name(index, stylegan_name)
        if path.is_file():
            return path
    name = classifier_file_name(index)
    source = f"StyleGAN's networks/metrics/{classifier_file_name(index, True)}"
    if index == BEARD_INDEX:
        source += f", which the IA-FaceS release renames {name}"
    raise MetricError(f"missing CelebA-HQ attribute classifier {folder / name}: it is NVIDIA's file from the StyleGAN "
                      f"release's metrics files ({source}); put it in the folder given with --classifiers DIR")


# --------------------------------------------------------------------------- restricted pickle reader


class _NetworkStandIn:
    """Stands in for ``dnnlib.tflib.network.Network``: keeps the pickled state, runs nothing."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` as the first argument of ``_reconstruct``."""


class _DTypeStandIn:
    """Records a pickled ``numpy.dtype(descr, align, copy)`` and its BUILD state."""

    def __init__(self, descr: Any, align: Any = False, copy: Any = True) -> None:
        self.descr, self.state = descr, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def resolve(self) -> np.dtype:
        descr = self.descr.decode("latin1") if isinstance(self.descr, bytes) else self.descr
        if not isinstance(descr, str) or not re.fullmatch(r"[fiub][1248]", descr):
            raise pickle.UnpicklingError(f"Refused: numpy dtype {self.descr!r} (only numeric dtypes are read)")
        order = "<"
        if self.state is not None:
            if not isinstance(self.state, tuple) or len(self.state) < 2 or self.state[1] not in ("<", ">", "|", "="):
                raise pickle.UnpicklingError("Refused: a numpy dtype with an unexpected state")
            if len(self.state) > 4 and (self.state[3] is not None or self.state[4] is not None):
                raise pickle.UnpicklingError("Refused: a structured numpy dtype")
            order = self.state[1]
        return np.dtype(descr).newbyteorder(order if order in "<>" else "=")


def _raw_bytes(data: Any) -> bytes:
    if isinstance(data, str):  # Python 2 strings come back latin1-decoded
        return data.encode("latin1")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    raise pickle.UnpicklingError(f"Refused: numpy data of type {type(data).__name__}")


class _ArrayStandIn:
    """Records a pickled ``numpy.ndarray`` (``_reconstruct`` + BUILD) without numpy's unpickling."""

    def __init__(self) -> None:
        self.state = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def resolve(self) -> np.ndarray:
        state = self.state
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4 or not isinstance(state[1], _DTypeStandIn):
            raise pickle.UnpicklingError("Refused: a numpy array with an unexpected state")
        shape, dtype, fortran, data = state[0], state[1].resolve(), bool(state[2]), _raw_bytes(state[3])
        if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise pickle.UnpicklingError(f"Refused: numpy array shape {shape!r}")
        if len(data) != math.prod(shape) * dtype.itemsize:
            raise pickle.UnpicklingError(f"Refused: numpy array {shape} of {dtype} holds {len(data)} bytes")
        a = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
        return np.ascontiguousarray(a, dtype=dtype.newbyteorder("="))


class _ScalarStandIn:
    """Records a pickled numpy scalar (``numpy.core.multiarray.scalar(dtype, bytes)``)."""

    def __init__(self, dtype: Any, data: Any = b"") -> None:
        if not isinstance(dtype, _DTypeStandIn):
            raise pickle.UnpicklingError("Refused: a numpy scalar without a numpy dtype")
        self.dtype, self.data = dtype, data

    def resolve(self) -> np.ndarray:
        dtype, data = self.dtype.resolve(), _raw_bytes(self.data)
        if len(data) != dtype.itemsize:
            raise pickle.UnpicklingError(f"Refused: a numpy {dtype} scalar of {len(data)} bytes")
        return np.frombuffer(data, dtype).astype(dtype.newbyteorder("=")).reshape(())


def _reconstruct(subtype: Any, shape: Any = (0,), typecode: Any = b"b") -> _ArrayStandIn:
    if subtype is not _NdarrayToken:
        raise pickle.UnpicklingError("Refused: numpy _reconstruct of something other than numpy.ndarray")
    return _ArrayStandIn()


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """Protocol-2 pickles write ``bytes`` as ``_codecs.encode(text, 'latin1')``; only that is done."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("Refused: _codecs.encode other than text to latin1 bytes")
    return text.encode("latin1")


#: The only globals a classifier pickle may name, each mapped to its stand-in.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("dnnlib.tflib.network", "Network"): _NetworkStandIn,
    ("numpy", "ndarray"): _NdarrayToken,
    ("numpy", "dtype"): _DTypeStandIn,
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = _reconstruct
    _ALLOWED_GLOBALS[(_module, "scalar")] = _ScalarStandIn


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _ClassifierUnpickler(pickle._Unpickler):
    """Python's unpickler with an allow-list of globals, and BUILD (which sets attributes) only on
    the stand-ins' instances, so that a file cannot alter the stand-in classes or functions."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None

    def load_build(self) -> None:
        inst = self.stack[-2] if len(self.stack) > 1 else None
        if type(inst) not in (_NetworkStandIn, _ArrayStandIn, _DTypeStandIn):
            raise pickle.UnpicklingError(f"Refused: setting the state of a {type(inst).__name__}")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build


@dataclass
class NetworkPickle:
    """What is used of a ``dnnlib.tflib.network.Network`` pickle: the build function's name, its
    keyword arguments and the variables (local TF name -> numpy array, TF layouts: conv HWIO,
    dense ``[in, out]``), in the file's order."""

    name: Optional[str]
    version: int
    build_func_name: str
    static_kwargs: dict
    variables: "OrderedDict[str, np.ndarray]"


def _plain(value: Any, where: str) -> Any:
    """``value`` if it holds only None/bool/int/float/str and lists/tuples/dicts of them."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, where) for v in value)
    if isinstance(value, dict):
        return {_plain(k, where): _plain(v, where) for k, v in value.items()}
    raise pickle.UnpicklingError(f"Refused: {where} holds a {type(value).__name__}")


def _unpack_state(state: Any) -> NetworkPickle:
    if not isinstance(state, dict):
        raise pickle.UnpicklingError("Refused: the Network state is not a dict")
    missing = [k for k in ("version", "static_kwargs", "build_func_name", "variables") if k not in state]
    if missing:
        raise pickle.UnpicklingError(f"Refused: the Network state lacks {', '.join(missing)}")
    if state["version"] not in (2, 3):
        raise pickle.UnpicklingError(f"Refused: Network pickle version {state['version']!r} (dnnlib writes 2 or 3)")
    if state.get("components"):
        raise pickle.UnpicklingError("Refused: the Network has sub-networks (a classifier has none)")
    kwargs = _plain(state["static_kwargs"], "static_kwargs")
    if not isinstance(kwargs, dict) or not isinstance(state["build_func_name"], str):
        raise pickle.UnpicklingError("Refused: static_kwargs or build_func_name of an unexpected type")
    variables: OrderedDict[str, np.ndarray] = OrderedDict()
    entries = state["variables"]
    if not isinstance(entries, (list, tuple)):
        raise pickle.UnpicklingError("Refused: the Network variables are not a list")
    for entry in entries:
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], (_ArrayStandIn, _ScalarStandIn))):
            raise pickle.UnpicklingError("Refused: a Network variable that is not a (name, numpy array) pair")
        if entry[0] in variables:
            raise pickle.UnpicklingError(f"Refused: variable {entry[0]} appears twice")
        variables[entry[0]] = entry[1].resolve()
    name = state.get("name")
    return NetworkPickle(name if isinstance(name, str) else None, state["version"], state["build_func_name"],
                         kwargs, variables)


def read_network_pickle(path: PathLike) -> NetworkPickle:
    """Read a ``dnnlib.tflib.network.Network`` pickle (a StyleGAN classifier file) without running
    anything from it; a refused global, a foreign or damaged file -> one-line :class:`MetricError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MetricError(f"cannot read classifier file {path}: {e.strerror or e}") from None
    if not data.startswith(b"\x80"):
        raise MetricError(f"{path} is not a pickle (starts with {data[:16]!r}; a download error page?): "
                          "fetch the classifier file again")
    try:
        obj = _ClassifierUnpickler(io.BytesIO(data), encoding="latin1").load()
        if not isinstance(obj, _NetworkStandIn) or not hasattr(obj, "state"):
            raise pickle.UnpicklingError(f"Refused: the file holds a {type(obj).__name__}, not a dnnlib Network")
        return _unpack_state(obj.state)
    except _RefusedGlobal as e:
        raise MetricError(f"refused to load {path}: it names the global {e}, which a StyleGAN classifier pickle "
                          "never holds (only dnnlib.tflib.network.Network and numpy arrays are read); nothing "
                          "from the file was run") from None
    except pickle.UnpicklingError as e:
        raise MetricError(f"refused to load {path}: {str(e).removeprefix('Refused: ')}; it is not a StyleGAN "
                          "classifier pickle") from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, MemoryError,
            OverflowError, UnicodeDecodeError) as e:
        raise MetricError(f"cannot read {path} as a StyleGAN classifier pickle ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else 'damaged'}); fetch the file again") from None


# --------------------------------------------------------------------------- D_basic in PyTorch


#: D_basic's keyword defaults (StyleGAN ``training/networks_stylegan.py``).
D_BASIC_DEFAULTS: dict[str, Any] = dict(
    num_channels=1, resolution=32, label_size=0, fmap_base=8192, fmap_decay=1.0, fmap_max=512,
    nonlinearity="lrelu", use_wscale=True, mbstd_group_size=4, mbstd_num_features=1, dtype="float32",
    fused_scale="auto", blur_filter=[1, 2, 1], structure="auto",
)


def d_basic_kwargs(static_kwargs: Mapping[str, Any]) -> dict:
    """D_basic's effective arguments: the pickle's ``static_kwargs`` over D_basic's defaults
    (unknown keys are ignored, as D_basic's ``**_kwargs`` does), checked."""
    kw = dict(D_BASIC_DEFAULTS)
    kw.update({k: v for k, v in static_kwargs.items() if k in D_BASIC_DEFAULTS})
    res = kw["resolution"]
    if not isinstance(res, int) or res < 4 or res & (res - 1):
        raise MetricError(f"D_basic resolution {res!r} is not a power of two >= 4")
    for key in ("num_channels", "fmap_base", "fmap_max", "mbstd_group_size", "mbstd_num_features", "label_size"):
        if not isinstance(kw[key], int) or isinstance(kw[key], bool) or kw[key] < 0:
            raise MetricError(f"D_basic {key}={kw[key]!r} is not a non-negative integer")
    if kw["nonlinearity"] not in ("relu", "lrelu"):
        raise MetricError(f"D_basic nonlinearity {kw['nonlinearity']!r} is not relu or lrelu")
    if kw["dtype"] != "float32":
        raise MetricError(f"D_basic dtype {kw['dtype']!r}: only float32 classifiers are supported")
    if kw["fused_scale"] not in (True, False, "auto"):
        raise MetricError(f"D_basic fused_scale {kw['fused_scale']!r} is not True, False or 'auto'")
    if kw["structure"] not in ("auto", "fixed", "linear", "recursive"):
        raise MetricError(f"D_basic structure {kw['structure']!r} is unknown")
    blur = kw["blur_filter"]
    if blur is not None and not (isinstance(blur, (list, tuple)) and blur
                                 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in blur)):
        raise MetricError(f"D_basic blur_filter {blur!r} is not a list of numbers")
    if kw["mbstd_group_size"] > 1 and kw["mbstd_num_features"] < 1:
        raise MetricError("D_basic mbstd_num_features must be >= 1 with a minibatch-stddev layer")
    return kw


def d_basic_variable_shapes(kwargs: Mapping[str, Any]) -> "OrderedDict[str, tuple]":
    """The variables D_basic creates (local TF name -> TF shape), in creation order for the
    template graph: ``lod``, ``FromRGB_lod0``, per resolution ``Conv0``/``Conv1_down`` and the
    next ``FromRGB_lod<k>`` (none with ``structure='fixed'``), then ``4x4`` Conv/Dense0/Dense1."""
    kw = d_basic_kwargs(kwargs)
    log2 = int(math.log2(kw["resolution"]))

    def nf(stage: int) -> int:
        return min(int(kw["fmap_base"] / (2.0 ** (stage * kw["fmap_decay"]))), kw["fmap_max"])

    def layer(name: str, shape: tuple) -> None:
        shapes[f"{name}/weight"] = shape
        shapes[f"{name}/bias"] = (shape[-1],)

    shapes: OrderedDict[str, tuple] = OrderedDict(lod=())
    layer("FromRGB_lod0", (1, 1, kw["num_channels"], nf(log2 - 1)))
    for res in range(log2, 2, -1):
        layer(f"{2 ** res}x{2 ** res}/Conv0", (3, 3, nf(res - 1), nf(res - 1)))
        layer(f"{2 ** res}x{2 ** res}/Conv1_down", (3, 3, nf(res - 1), nf(res - 2)))
        if kw["structure"] != "fixed":
            layer(f"FromRGB_lod{log2 - res + 1}", (1, 1, kw["num_channels"], nf(res - 2)))
    extra = kw["mbstd_num_features"] if kw["mbstd_group_size"] > 1 else 0
    layer("4x4/Conv", (3, 3, nf(1) + extra, nf(1)))
    layer("4x4/Dense0", (nf(1) * 16, nf(0)))
    layer("4x4/Dense1", (nf(0), max(kw["label_size"], 1)))
    return shapes


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class DBasic(nn.Module):
    """StyleGAN's ``D_basic`` at ``lod = 0`` (fully grown), as NVIDIA's attribute classifiers use it.

    ``forward(images [N, C, R, R], labels [N, label_size] | None) -> [N, 1]``. Per resolution
    ``R..8``: ``Conv0`` (3x3) and ``Conv1_down`` (blur with ``blur_filter``, 3x3 conv, 2x down:
    fused as a stride-2 4x4 conv when ``fused_scale`` is True or 'auto' at >= 128 px, else avg pool
    after the conv); at 4x4: minibatch stddev (``mbstd_group_size`` > 1; groups are images
    ``m, m + N/G, ...``), ``Conv``, ``Dense0``, ``Dense1`` (gain 1). Weights are scaled at run
    time by ``gain / sqrt(fan_in)`` with ``use_wscale`` (gain sqrt 2; lrmul 1), biases added after,
    then the activation. The ``FromRGB_lod<k>`` of lower resolutions (k >= 1) are checked on loading
    but take no part at lod 0 (``inactive``). Without labels a label-conditioned net multiplies by
    zeros, as the TF Network fills a missing input."""

    def __init__(self, static_kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.kwargs = d_basic_kwargs(static_kwargs)
        self.log2 = int(math.log2(self.kwargs["resolution"]))
        self.shapes = d_basic_variable_shapes(self.kwargs)
        self.inactive = tuple(n for n in self.shapes
                              if n.startswith("FromRGB_lod") and not n.startswith("FromRGB_lod0/"))
        self._buffers_of: dict[str, str] = {}
        for tf_name, shape in self.shapes.items():
            if tf_name == "lod" or tf_name in self.inactive:
                continue
            attr = tf_name.replace("/", "_")
            self._buffers_of[tf_name] = attr
            self.register_buffer(attr, torch.zeros(self._torch_shape(shape)))
        blur = self.kwargs["blur_filter"]
        if blur:
            f = np.asarray(blur, np.float32)
            f = f[:, None] * f[None, :] if f.ndim == 1 else f
            self.register_buffer("blur_kernel", torch.from_numpy(f / f.sum()))
        else:
            self.blur_kernel = None
        self.loaded = False

    @staticmethod
    def _torch_shape(tf_shape: tuple) -> tuple:
        return (tf_shape[3], tf_shape[2], tf_shape[0], tf_shape[1]) if len(tf_shape) == 4 else tuple(tf_shape)

    @property
    def resolution(self) -> int:
        return self.kwargs["resolution"]

    @property
    def batch_coupled(self) -> bool:
        """Whether an image's score depends on the other images of its batch (minibatch stddev)."""
        return self.kwargs["mbstd_group_size"] > 1

    def load_tf_variables(self, variables: Mapping[str, np.ndarray], source: str = "the file") -> None:
        """Load TF variables (conv HWIO, dense ``[in, out]``): every expected variable exactly once
        with its shape, no other; ``lod`` must be 0. A mismatch is one :class:`MetricError` line."""
        missing = [n for n in self.shapes if n not in variables]
        extra = [n for n in variables if n not in self.shapes]
        if missing or extra:
            parts = ([f"lacks {', '.join(missing[:4])}" + (" ..." if len(missing) > 4 else "")] if missing else []) + \
                    ([f"has unexpected {', '.join(extra[:4])}" + (" ..." if len(extra) > 4 else "")] if extra else [])
            raise MetricError(f"{source} does not match D_basic{self._kwarg_text()}: it {'; it '.join(parts)}")
        for name, shape in self.shapes.items():
            value = np.asarray(variables[name])
            if value.shape != tuple(shape):
                raise MetricError(f"{source}: variable {name} has shape {list(value.shape)}, D_basic"
                                  f"{self._kwarg_text()} makes {list(shape)}")
            if not np.issubdtype(value.dtype, np.floating) or not np.isfinite(value).all():
                raise MetricError(f"{source}: variable {name} is not a finite float array")
        lod = float(variables["lod"])
        if lod != 0.0:
            raise MetricError(f"{source}: lod = {lod:g}, a snapshot taken while growing; only fully grown "
                              "classifiers (lod 0) are supported")
        for name, attr in self._buffers_of.items():
            t = torch.from_numpy(np.asarray(variables[name], np.float32).copy())
            getattr(self, attr).copy_(t.permute(3, 2, 0, 1) if t.ndim == 4 else t)
        self.loaded = True

    def _kwarg_text(self) -> str:
        keys = ("resolution", "num_channels", "fmap_base", "fmap_max", "mbstd_group_size", "structure")
        return "(" + ", ".join(f"{k}={self.kwargs[k]!r}" for k in keys) + ")"

    # ----------------------------------------------------------------- ops

    def _coef(self, tf_name: str, gain: float) -> float:
        shape = self.shapes[f"{tf_name}/weight"]
        return gain / math.sqrt(math.prod(shape[:-1])) if self.kwargs["use_wscale"] else 1.0

    def _act(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, 0.2) if self.kwargs["nonlinearity"] == "lrelu" else F.relu(x)

    def _bias(self, x: Tensor, tf_name: str) -> Tensor:
        b = getattr(self, self._buffers_of[f"{tf_name}/bias"])
        return x + (b if x.ndim == 2 else b.view(1, -1, 1, 1))

    def _conv(self, x: Tensor, tf_name: str, gain: float = math.sqrt(2)) -> Tensor:
        w = getattr(self, self._buffers_of[f"{tf_name}/weight"]) * self._coef(tf_name, gain)
        p = w.shape[-1] // 2
        return self._bias(F.conv2d(x, w, padding=p), tf_name)

    def _blur(self, x: Tensor) -> Tensor:
        if self.blur_kernel is None:
            return x
        k = self.blur_kernel
        (top, bottom), (left, right) = (_same_padding(x.shape[2], k.shape[0], 1),
                                        _same_padding(x.shape[3], k.shape[1], 1))
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, k.expand(x.shape[1], 1, *k.shape), groups=x.shape[1])

    def _conv_down(self, x: Tensor, tf_name: str) -> Tensor:
        fused = self.kwargs["fused_scale"]
        if fused == "auto":
            fused = min(x.shape[2:]) >= 128
        w = getattr(self, self._buffers_of[f"{tf_name}/weight"]) * self._coef(tf_name, math.sqrt(2))
        if not fused:
            x = F.conv2d(x, w, padding=w.shape[-1] // 2)
            return self._bias(F.avg_pool2d(x, 2), tf_name)
        w = F.pad(w, (1, 1, 1, 1))
        w = (w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]) * 0.25
        (top, bottom), (left, right) = (_same_padding(x.shape[2], w.shape[2], 2),
                                        _same_padding(x.shape[3], w.shape[3], 2))
        return self._bias(F.conv2d(F.pad(x, (left, right, top, bottom)), w, stride=2), tf_name)

    def _minibatch_stddev(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g, f = min(self.kwargs["mbstd_group_size"], n), self.kwargs["mbstd_num_features"]
        if n % g or c % f:
            raise MetricError(f"minibatch stddev: a batch of {n} does not split into groups of {g} (TF refuses it "
                              "too); give a multiple of the group size")
        y = x.float().reshape(g, -1, f, c // f, h, w)
        y = y - y.mean(0, keepdim=True)
        y = torch.sqrt(y.square().mean(0) + 1e-8)
        y = y.mean((2, 3, 4)).reshape(-1, f, 1, 1).to(x.dtype)
        return torch.cat([x, y.repeat(g, 1, h, w)], 1)

    def _dense(self, x: Tensor, tf_name: str, gain: float) -> Tensor:
        w = getattr(self, self._buffers_of[f"{tf_name}/weight"]) * self._coef(tf_name, gain)
        return self._bias(x.flatten(1) @ w, tf_name)

    def forward(self, images: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """``images [N, C, R, R]`` (float, [-1, 1]) -> scores ``[N, 1]``."""
        if not self.loaded:
            raise MetricError("the CelebA-HQ classifier has no weights; load it with load_classifier(path)")
        want = (self.kwargs["num_channels"], self.resolution, self.resolution)
        if images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise MetricError(f"the classifier takes images [N, {want[0]}, {want[1]}, {want[2]}], got "
                              f"{list(images.shape)}")
        x = self._act(self._conv(images, "FromRGB_lod0"))
        for res in range(self.log2, 2, -1):
            scope = f"{2 ** res}x{2 ** res}"
            x = self._act(self._conv(x, f"{scope}/Conv0"))
            x = self._act(self._conv_down(self._blur(x), f"{scope}/Conv1_down"))
        if self.batch_coupled:
            x = self._minibatch_stddev(x)
        x = self._act(self._conv(x, "4x4/Conv"))
        x = self._act(self._dense(x, "4x4/Dense0", math.sqrt(2)))
        x = self._dense(x, "4x4/Dense1", 1.0)
        if self.kwargs["label_size"]:
            if labels is None:
                labels = torch.zeros(x.shape[0], self.kwargs["label_size"], dtype=x.dtype, device=x.device)
            x = (x * labels.to(x)).sum(1, keepdim=True)
        return x


def load_classifier(path: PathLike, device: Union[str, torch.device] = "cpu") -> DBasic:
    """A classifier pickle as an eval-mode :class:`DBasic` on ``device`` (nothing from the file runs)."""
    net_pickle = read_network_pickle(path)
    func = net_pickle.build_func_name.rsplit(".", 1)[-1]
    if func != "D_basic":
        raise MetricError(f"{path} was built by {net_pickle.build_func_name}, not D_basic: it is not one of "
                          "NVIDIA's CelebA-HQ attribute classifiers")
    net = DBasic(net_pickle.static_kwargs)
    net.load_tf_variables(net_pickle.variables, str(path))
    return net.eval().to(device)


def count_with_attribute(logits: Tensor) -> int:
    """The release's count: images whose ``softmax([logit, -logit])`` peaks at index 1 (the file's
    attribute present; a logit of exactly 0, or one so small that both round to 0.5, is not counted)."""
    p = torch.softmax(torch.cat([logits, -logits], 1).float(), 1)
    return int((p.argmax(1) == 1).sum())


# --------------------------------------------------------------------------- the release's count


def read_release_image(path: PathLike, resolution: int) -> np.ndarray:
    """A file as the release feeds it: PIL ``convert('RGB')`` (no resize), ToTensor, Normalize(0.5,
    0.5) -> float32 ``[3, R, R]`` in [-1, 1]."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise MetricError(f"cannot read {path} as an image ({type(e).__name__}); the release classifies every entry "
                          "of the folder: remove anything that is not an edited image") from None
    if rgb.shape[:2] != (resolution, resolution):
        raise MetricError(f"{path} is {rgb.shape[1]}x{rgb.shape[0]} px; the classifier takes {resolution}x{resolution} "
                          f"images unresized, as the release feeds them: save the edits at {resolution} px")
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255)
    return x.sub(0.5).div(0.5).numpy()


def append_count(path: PathLike, count: int) -> None:
    """Append ``'%d\\n' % count`` to ``path`` as the release does (mode 'a'), through a temporary
    file and a rename, so that an interrupted write never damages the earlier lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.read_bytes() if path.exists() else b""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(before + b"%d\n" % count)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass
class AttributeAccuracy:
    """The release's attribute count of one image folder.

    ``count``: images read with the file's attribute (what the release prints and appends to
    ``acc.txt``) among the first ``counted = floor(total / 100) * 100`` entries of ``os.listdir``;
    ``share = count / counted``; ``accuracy``: the edit's success as the release reports it:
    ``share``, except for file 27 (``beard``, which reads No_Beard) where adding a beard succeeds
    on ``1 - share`` (the release's ``plot_curves``)."""

    attribute: str
    index: int
    classifier: str
    images: str
    total: int
    counted: int
    count: int
    share: float
    accuracy: float
    not_counted: list = field(default_factory=list)
    acc_txt: Optional[str] = None

    def as_dict(self) -> dict:
        return asdict(self)


def release_attribute_accuracy(image_dir: PathLike, attribute: Union[int, str], classifiers_dir: PathLike,
                               out_dir: Optional[PathLike] = None,
                               device: Union[str, torch.device] = "cpu") -> AttributeAccuracy:
    """Count ``image_dir`` with classifier ``attribute`` exactly as the release's ``attr_acc.py``.

    Entries in ``os.listdir`` order, batches of 100, only whole batches (``floor(N/100) * 100``
    images; the rest are listed in ``not_counted``); each image PIL RGB, ToTensor, Normalize 0.5 at
    the classifier's size; an image counts when ``softmax([logit, -logit])`` peaks at index 1. With
    ``out_dir`` the count is appended to ``out_dir/acc.txt`` as ``'%d\\n'`` (atomic rewrite). Fewer
    than 100 entries is an error (the release would write 0)."""
    index = attribute_index(attribute)
    path = find_classifier_file(classifiers_dir, index)
    folder = Path(image_dir)
    if not folder.is_dir():
        raise MetricError(f"image folder {folder} does not exist")
    names = os.listdir(folder)
    counted = len(names) // RELEASE_BATCH * RELEASE_BATCH
    if not counted:
        raise MetricError(f"{folder} holds {len(names)} entries; the release counts whole batches of "
                          f"{RELEASE_BATCH}, so it needs at least {RELEASE_BATCH} edited images")
    device = resolve_device(device)
    net = load_classifier(path, device)
    step = RELEASE_BATCH if net.batch_coupled else 25
    count = 0
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        for start in range(0, counted, RELEASE_BATCH):
            batch = np.stack([read_release_image(folder / n, net.resolution)
                              for n in names[start:start + RELEASE_BATCH]])
            x = torch.from_numpy(batch).to(device)
            logits = torch.cat([net(x[i:i + step]) for i in range(0, len(x), step)])
            count += count_with_attribute(logits)
    share = count / counted
    acc_txt = None
    if out_dir is not None:
        acc_txt = str(Path(out_dir) / "acc.txt")
        append_count(acc_txt, count)
    return AttributeAccuracy(
        attribute=CLASSIFIER_NAMES[index], index=index, classifier=str(path), images=str(folder),
        total=len(names), counted=counted, count=count, share=share,
        accuracy=1.0 - share if index == BEARD_INDEX else share, not_counted=names[counted:], acc_txt=acc_txt)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="The release's CelebA-HQ attribute count of a folder of edited images, with "
                                   "NVIDIA's StyleGAN attribute classifiers (no TensorFlow).")
    p.add_argument("--images", required=True, metavar="DIR", help="the edited images (256 px), e.g. the folder "
                   "the release reads as FAKE/<attribute folder>")
    p.add_argument("--attribute", required=True, help="classifier: 0..39 or its name (beard, smiling, "
                   "mouth-slightly-open, ...)")
    p.add_argument("--classifiers", required=True, metavar="DIR", help="folder holding "
                   "celebahq-classifier-NN-<name>.pkl (StyleGAN's metrics files)")
    p.add_argument("--out_dir", default=None, metavar="DIR", help="append the count to DIR/acc.txt, as the release")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return p


@main_guard
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    r = release_attribute_accuracy(args.images, args.attribute, args.classifiers, args.out_dir, args.device)
    print(r.count)
    note = " (file 27 reads No_Beard: accuracy = 1 - share)" if r.index == BEARD_INDEX else ""
    print(f"{r.attribute}: {r.count} of {r.counted} counted images read with the attribute (share {r.share:.4f}, "
          f"accuracy {r.accuracy:.4f}{note}); {len(r.not_counted)} of {r.total} entries not counted"
          + (f"; appended to {r.acc_txt}" if r.acc_txt else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
