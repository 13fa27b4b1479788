"""NVIDIA's CelebA-HQ attribute classifiers without TensorFlow (evaluation/celebahq_classifier.py).

The pickles are written here in the format of the real files: a ``dnnlib.tflib.network.Network``
(a class that exists in ``sys.modules`` only while the test writes), pickled with protocol 4
(Python 3.6's highest, which dnnlib's ``save_pkl`` uses), numpy arrays under numpy 1.x's module
name ``numpy.core.multiarray``, the state keys of dnnlib's ``Network.__getstate__`` and the
variable names and shapes D_basic creates, listed here from StyleGAN's code (random values). The
PyTorch forward is compared with a numpy (float64) re-implementation of D_basic's TensorFlow ops
written below: SAME convolutions on HWIO weights, depthwise blur, fused and separate
downscaling, minibatch stddev with TF's reshape, lerp_clip of the linear structure.
"""
import collections
import math
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import celebahq_classifier as cc
from utils.errors import MetricError

_RECONSTRUCT = np.zeros(1, np.float32).__reduce__()[0]
_SCALAR = np.float32(0).__reduce__()[0]


class _LegacyNumpyPickler(pickle._Pickler):
    """Writes numpy's ``_reconstruct`` and ``scalar`` as ``numpy.core.multiarray.*``, numpy 1.x's
    names, which the 2019 classifier files hold."""

    def save_global(self, obj, name=None):
        legacy = {id(_RECONSTRUCT): "_reconstruct", id(_SCALAR): "scalar"}
        if id(obj) not in legacy:
            return super().save_global(obj, name)
        if self.proto >= 4:
            self.save("numpy.core.multiarray")
            self.save(legacy[id(obj)])
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"numpy.core.multiarray\n{legacy[id(obj)]}\n".encode())
        self.memoize(obj)


def _fake_dnnlib(monkeypatch):
    """``dnnlib.tflib.network.Network`` in ``sys.modules`` for the duration of the test."""
    pkgs = {n: types.ModuleType(n) for n in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network")}

    class Network:
        def __init__(self, state):
            self._state = state

        def __getstate__(self):
            return self._state

    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    pkgs["dnnlib.tflib.network"].Network = Network
    for name, mod in pkgs.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return Network


def write_network_pickle(path, monkeypatch, variables, static_kwargs, build_module_src="", extra=None, protocol=4):
    """A file as dnnlib's ``save_pkl(network, path)`` writes it; ``extra`` adds state keys."""
    Network = _fake_dnnlib(monkeypatch)
    state = {"version": 3, "name": "D", "static_kwargs": dict(static_kwargs), "components": {},
             "build_module_src": build_module_src, "build_func_name": "D_basic",
             "variables": list(variables.items())}
    state.update(extra or {})
    with open(path, "wb") as f:
        _LegacyNumpyPickler(f, protocol=protocol).dump(Network(state))
    return path


# --------------------------------------------------------------------------- D_basic, as StyleGAN writes it


def d_basic_variables(rng, *, resolution, num_channels=3, fmap_base=8192, fmap_decay=1.0, fmap_max=512,
                      mbstd_group_size=4, mbstd_num_features=1, label_size=0, structure="auto", **_):
    """Names and shapes D_basic's template graph creates (random values), in creation order."""
    log2 = int(math.log2(resolution))

    def nf(stage):
        return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)

    out = {"lod": np.float32(0.0)}

    def add(name, shape):
        out[name + "/weight"] = rng.standard_normal(shape).astype(np.float32)
        out[name + "/bias"] = (0.1 * rng.standard_normal(shape[-1])).astype(np.float32)

    add("FromRGB_lod0", (1, 1, num_channels, nf(log2 - 1)))
    for res in range(log2, 2, -1):
        add(f"{2**res}x{2**res}/Conv0", (3, 3, nf(res - 1), nf(res - 1)))
        add(f"{2**res}x{2**res}/Conv1_down", (3, 3, nf(res - 1), nf(res - 2)))
        if structure != "fixed":
            add(f"FromRGB_lod{log2 - res + 1}", (1, 1, num_channels, nf(res - 2)))
    stddev = mbstd_num_features if mbstd_group_size > 1 else 0
    add("4x4/Conv", (3, 3, nf(1) + stddev, nf(1)))
    if stddev:  # weigh the stddev features up: their effect on the scores is then far above the tolerance
        out["4x4/Conv/weight"][:, :, -stddev:] *= 50
    add("4x4/Dense0", (nf(1) * 16, nf(0)))
    add("4x4/Dense1", (nf(0), max(label_size, 1)))
    return out


# --------------------------------------------------------------------------- numpy re-implementation of TF ops


def tf_same_pad(size, k, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def np_conv2d(x, w, stride=1):
    """tf.nn.conv2d(x NCHW, w HWIO, SAME)."""
    kh, kw = w.shape[:2]
    oh, t, b = tf_same_pad(x.shape[2], kh, stride)
    ow, l, r = tf_same_pad(x.shape[3], kw, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    out = np.zeros((x.shape[0], w.shape[3], oh, ow))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,co->nohw", xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride], w[i, j])
    return out


def np_depthwise(x, f, stride=1):
    """tf.nn.depthwise_conv2d with the same 2-D filter on every channel, SAME."""
    oh, t, b = tf_same_pad(x.shape[2], f.shape[0], stride)
    ow, l, r = tf_same_pad(x.shape[3], f.shape[1], stride)
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            out += xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] * f[i, j]
    return out


def np_blur2d(x, f, normalize=True, stride=1):
    f = np.asarray(f, np.float64)
    f = np.outer(f, f) if f.ndim == 1 else f
    return np_depthwise(x, f / f.sum() if normalize else f, stride)


def np_downscale2d(x):
    return np_blur2d(x, [0.5, 0.5], normalize=False, stride=2)


def np_weight(w, gain, use_wscale):
    return w * (gain / np.sqrt(np.prod(w.shape[:-1]))) if use_wscale else w


def np_conv2d_downscale2d(x, w, fused_scale):
    if fused_scale == "auto":
        fused_scale = min(x.shape[2:]) >= 128
    if not fused_scale:
        return np_downscale2d(np_conv2d(x, w))
    w = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    w = (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]) * 0.25
    return np_conv2d(x, w, stride=2)


def np_mbstd(x, group_size, num_new_features):
    g = min(group_size, x.shape[0])
    s = x.shape
    y = x.reshape(g, -1, num_new_features, s[1] // num_new_features, s[2], s[3])
    y = y - y.mean(axis=0, keepdims=True)
    y = np.sqrt(np.mean(y ** 2, axis=0) + 1e-8)
    y = y.mean(axis=(2, 3, 4), keepdims=True).mean(axis=2)
    y = np.tile(y, (g, 1, s[2], s[3]))
    return np.concatenate([x, y], axis=1)


def np_d_basic(images, v, labels=None, *, resolution, num_channels=3, label_size=0, nonlinearity="lrelu",
               use_wscale=True, mbstd_group_size=4, mbstd_num_features=1, fused_scale="auto",
               blur_filter=(1, 2, 1), structure="auto", **_):
    """D_basic in float64: the linear structure with lod_in = v['lod'] (the fixed one when asked)."""
    v = {k: np.asarray(a, np.float64) for k, a in v.items()}
    log2 = int(math.log2(resolution))
    act = (lambda t: np.maximum(t, 0.2 * t)) if nonlinearity == "lrelu" else (lambda t: np.maximum(t, 0))
    g2 = np.sqrt(2)

    def bias(t, name):
        b = v[name + "/bias"]
        return t + (b if t.ndim == 2 else b.reshape(1, -1, 1, 1))

    def conv(t, name, gain=g2):
        return bias(np_conv2d(t, np_weight(v[name + "/weight"], gain, use_wscale)), name)

    def dense(t, name, gain):
        t = t.reshape(t.shape[0], -1)
        return bias(t @ np_weight(v[name + "/weight"], gain, use_wscale), name)

    def blur(t):
        return np_blur2d(t, blur_filter) if blur_filter else t

    def fromrgb(t, res):
        return act(conv(t, f"FromRGB_lod{log2 - res}"))

    def block(t, res):
        s = f"{2**res}x{2**res}"
        if res >= 3:
            t = act(conv(t, s + "/Conv0"))
            w = np_weight(v[s + "/Conv1_down/weight"], g2, use_wscale)
            return act(bias(np_conv2d_downscale2d(blur(t), w, fused_scale), s + "/Conv1_down"))
        if mbstd_group_size > 1:
            t = np_mbstd(t, mbstd_group_size, mbstd_num_features)
        t = act(conv(t, "4x4/Conv"))
        t = act(dense(t, "4x4/Dense0", g2))
        return dense(t, "4x4/Dense1", 1.0)

    img = np.asarray(images, np.float64)
    x = fromrgb(img, log2)
    for res in range(log2, 2, -1):
        lod = log2 - res
        x = block(x, res)
        if structure == "fixed":
            continue
        img = np_downscale2d(img)
        y = fromrgb(img, res - 1)
        x = x + (y - x) * np.clip(v["lod"] - lod, 0.0, 1.0)
    x = block(x, 2)
    if label_size:
        x = np.sum(x * (np.zeros((x.shape[0], label_size)) if labels is None else labels), axis=1, keepdims=True)
    return x


# --------------------------------------------------------------------------- tests

CONFIGS = {
    # D_basic defaults: blur [1, 2, 1], minibatch stddev (groups of 4), fused 'auto' (off below 128 px)
    "defaults_32px_mbstd": dict(resolution=32, num_channels=3, fmap_base=64, fmap_max=16),
    # fused stride-2 conv, no blur, no stddev, relu
    "fused_relu_no_blur": dict(resolution=16, num_channels=3, fmap_base=32, fmap_max=8, fused_scale=True,
                               blur_filter=None, mbstd_group_size=0, nonlinearity="relu"),
    # no weight scaling, a 4-tap blur, two stddev features, labels, fixed structure
    "no_wscale_labels": dict(resolution=16, num_channels=3, fmap_base=32, fmap_max=8, use_wscale=False,
                             blur_filter=[1, 3, 3, 1], mbstd_group_size=2, mbstd_num_features=2, label_size=3,
                             structure="fixed"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_pytorch_forward_matches_the_tf_ops(tmp_path, monkeypatch, name):
    kw = CONFIGS[name]
    rng = np.random.default_rng(len(name))
    variables = d_basic_variables(rng, **kw)
    if not kw.get("use_wscale", True):  # He-scale the raw weights so that activations stay O(1)
        variables = {k: (a / np.sqrt(np.prod(a.shape[:-1])) if k.endswith("weight") else a)
                     for k, a in variables.items()}
    path = write_network_pickle(tmp_path / "c.pkl", monkeypatch, variables, kw)
    net = cc.load_classifier(path)
    n = 8 if kw.get("mbstd_group_size", 4) > 1 else 3
    images = rng.uniform(-1, 1, (n, 3, kw["resolution"], kw["resolution"])).astype(np.float32)
    labels = rng.standard_normal((n, kw.get("label_size", 0))).astype(np.float32) if kw.get("label_size") else None
    with torch.no_grad():
        got = net(torch.from_numpy(images), None if labels is None else torch.from_numpy(labels)).numpy()
    want = np_d_basic(images, variables, labels, **kw)
    assert got.shape == want.shape == (n, 1)
    assert np.ptp(want) > 1e-2  # scores differ between images far beyond the tolerance
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_minibatch_stddev_groups_strided_images(tmp_path, monkeypatch):
    """TF's reshape groups images m, m + N/G, ...: swapping two images of one group changes no
    score; moving one to another group changes scores."""
    kw = CONFIGS["defaults_32px_mbstd"]
    rng = np.random.default_rng(5)
    net = cc.load_classifier(write_network_pickle(tmp_path / "c.pkl", monkeypatch, d_basic_variables(rng, **kw), kw))
    x = torch.from_numpy(rng.uniform(-1, 1, (8, 3, 32, 32)).astype(np.float32))
    with torch.no_grad():
        base = net(x)[:, 0]
        same_group = net(x[[2, 1, 0, 3, 4, 5, 6, 7]])[:, 0]      # 0 and 2 share group 0 (with 4 and 6)
        other_group = net(x[[1, 0, 2, 3, 4, 5, 6, 7]])[:, 0]     # 0 and 1 are in different groups
    torch.testing.assert_close(same_group[[2, 1, 0, 3, 4, 5, 6, 7]], base, rtol=0, atol=1e-6)
    assert (other_group[[1, 0, 2, 3, 4, 5, 6, 7]] - base).abs().max() > 1e-3


@pytest.mark.parametrize("protocol", [4, 2])
def test_reader_keeps_weights_and_kwargs_and_runs_nothing(tmp_path, monkeypatch, protocol):
    marker = tmp_path / "ran.txt"
    kw = dict(resolution=16, num_channels=3, fmap_base=32, fmap_max=8, label_size=0)
    variables = d_basic_variables(np.random.default_rng(1), **kw)
    src = f"open({str(marker)!r}, 'w').write('executed')\ndef D_basic(*a, **k): pass\n"
    path = write_network_pickle(tmp_path / "c.pkl", monkeypatch, variables, kw, build_module_src=src,
                                protocol=protocol)
    for name in ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"):  # the reader needs no dnnlib
        monkeypatch.delitem(sys.modules, name)
    raw = path.read_bytes()
    assert raw[:2] == bytes([0x80, protocol]) and b"numpy.core.multiarray" in raw and b"numpy._core" not in raw
    assert b"dnnlib.tflib.network" in raw and (protocol > 2 or b"_codecs" in raw)

    got = cc.read_network_pickle(path)
    assert not marker.exists()
    assert (got.version, got.name, got.build_func_name, got.static_kwargs) == (3, "D", "D_basic", kw)
    assert list(got.variables) == list(variables)
    for k, a in variables.items():
        assert got.variables[k].dtype == np.float32 and np.array_equal(got.variables[k], a), k
    assert got.variables["lod"].shape == ()
    cc.load_classifier(path)
    assert not marker.exists()


class _Evil:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _evil_cases(marker):
    cmd = f"touch {marker}"
    return {
        "os.system at the top": (_Evil(os.system, cmd), "posix.system"),
        "builtins.eval at the top": (_Evil(eval, f"open({str(marker)!r}, 'w')"), "builtins.eval"),
        "os.system inside the variables": ("variables", "posix.system"),
        "a class of another module": (collections.Counter("ab"), "collections.Counter"),
    }


@pytest.mark.parametrize("case", ["os.system at the top", "builtins.eval at the top",
                                  "os.system inside the variables", "a class of another module"])
def test_pickle_with_other_globals_is_refused_without_running(tmp_path, monkeypatch, case):
    marker = tmp_path / "pwned"
    obj, global_name = _evil_cases(marker)[case]
    path = tmp_path / "evil.pkl"
    if obj == "variables":
        kw = dict(resolution=16, fmap_base=32, fmap_max=8)
        variables = d_basic_variables(np.random.default_rng(0), **kw)
        variables["4x4/Dense1/bias"] = _Evil(os.system, f"touch {marker}")
        write_network_pickle(path, monkeypatch, variables, kw)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(MetricError) as e:
        cc.read_network_pickle(path)
    msg = str(e.value)
    assert "\n" not in msg and global_name in msg and "nothing from the file was run" in msg
    assert not marker.exists()


def test_build_on_a_stand_in_class_is_refused(tmp_path):
    """A crafted BUILD cannot set attributes of the reader's own classes."""
    body = (b"\x80\x04" + b"\x8c\x14dnnlib.tflib.network\x8c\x07Network\x93"   # the class itself
            + b"N}\x8c\x0c__setstate__K\x01s\x86" + b"b.")                      # BUILD (None, {...})
    path = tmp_path / "build.pkl"
    path.write_bytes(body)
    with pytest.raises(MetricError, match="setting the state of a type"):
        cc.read_network_pickle(path)
    assert "__setstate__" in vars(cc._NetworkStandIn) and callable(cc._NetworkStandIn.__setstate__)


def test_foreign_and_damaged_files_are_one_line_errors(tmp_path):
    html = tmp_path / "page.pkl"
    html.write_bytes(b"<!DOCTYPE html><html>Google Drive quota exceeded</html>")
    with pytest.raises(MetricError, match="not a pickle"):
        cc.read_network_pickle(html)
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(pickle.dumps({"a": list(range(100))}, protocol=4)[:40])
    with pytest.raises(MetricError) as e:
        cc.read_network_pickle(cut)
    assert "\n" not in str(e.value)
    plain = tmp_path / "dict.pkl"
    plain.write_bytes(pickle.dumps({"version": 3}, protocol=4))
    with pytest.raises(MetricError, match="not a dnnlib Network"):
        cc.read_network_pickle(plain)


def test_variable_mismatches_are_one_clear_line(tmp_path, monkeypatch):
    kw = dict(resolution=16, num_channels=3, fmap_base=32, fmap_max=8)
    good = d_basic_variables(np.random.default_rng(2), **kw)

    def load(variables, **extra):
        return cc.load_classifier(write_network_pickle(tmp_path / "c.pkl", monkeypatch, variables, kw, extra=extra))

    missing = dict(good)
    del missing["8x8/Conv1_down/weight"]
    with pytest.raises(MetricError, match=r"lacks 8x8/Conv1_down/weight"):
        load(missing)
    extra = dict(good, **{"4x4/Dense2/weight": np.zeros((8, 1), np.float32)})
    with pytest.raises(MetricError, match=r"unexpected 4x4/Dense2/weight"):
        load(extra)
    wrong = dict(good, **{"16x16/Conv0/weight": np.zeros((3, 3, 4, 5), np.float32)})
    with pytest.raises(MetricError, match=r"16x16/Conv0/weight has shape \[3, 3, 4, 5\].*makes \[3, 3, 4, 4\]"):
        load(wrong)
    with pytest.raises(MetricError, match="lod = 0.5"):
        load(dict(good, lod=np.float32(0.5)))
    with pytest.raises(MetricError, match="not D_basic"):
        load(good, build_func_name="G_style")
    with pytest.raises(MetricError) as info:
        load(missing)
    assert "\n" not in str(info.value)


def test_release_count_rule():
    """softmax([l, -l]) peaks at index 1 for a negative logit; a tie (0, or a logit too small to
    move the float32 softmax off 0.5) stays at index 0."""
    logits = torch.tensor([[-1.0], [1.0], [0.0], [-1e-9], [-0.01], [3.0]])
    assert cc.count_with_attribute(logits) == 2


def test_attribute_names_and_the_beard_rename(tmp_path):
    assert cc.attribute_index("beard") == cc.attribute_index("No_Beard") == cc.attribute_index("no-beard") == 27
    assert cc.attribute_index("Mouth_Slightly_Open") == 24 and cc.attribute_index("0") == 0
    assert cc.classifier_file_name(27) == "celebahq-classifier-27-beard.pkl"
    assert cc.classifier_file_name(27, stylegan_name=True) == "celebahq-classifier-27-no-beard.pkl"
    assert cc.classifier_file_name(16) == "celebahq-classifier-16-bushy-eyebrows.pkl"
    for bad in ("moustache", 40, -1):
        with pytest.raises(MetricError):
            cc.attribute_index(bad)
    with pytest.raises(MetricError) as e:
        cc.find_classifier_file(tmp_path, 27)
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("celebahq-classifier-27-beard.pkl", "celebahq-classifier-27-no-beard.pkl", "StyleGAN",
                 "--classifiers DIR"):
        assert part in msg
    (tmp_path / "celebahq-classifier-27-no-beard.pkl").write_bytes(b"x")  # StyleGAN's name is found too
    assert cc.find_classifier_file(tmp_path, 27).name == "celebahq-classifier-27-no-beard.pkl"
    (tmp_path / "celebahq-classifier-27-beard.pkl").write_bytes(b"x")     # the release's name first
    assert cc.find_classifier_file(tmp_path, 27).name == "celebahq-classifier-27-beard.pkl"


def _release_image(path):
    """The release's preprocessing, in float64: PIL RGB, /255, (x - 0.5) / 0.5."""
    return (np.asarray(Image.open(path).convert("RGB"), np.float64).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5


def test_release_attribute_accuracy_counts_whole_batches_of_100(tmp_path, monkeypatch):
    kw = dict(resolution=16, num_channels=3, fmap_base=32, fmap_max=8)  # with minibatch stddev
    rng = np.random.default_rng(3)
    variables = d_basic_variables(rng, **kw)
    variables["4x4/Dense1/bias"] = np.zeros(1, np.float32)
    images = tmp_path / "no_beard"
    images.mkdir()
    for i in range(250):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(images / f"{i}.png")
    names = os.listdir(images)
    x = np.stack([_release_image(images / n) for n in names])
    raw = np.concatenate([np_d_basic(x[s:s + 100], variables, **kw)[:, 0] for s in (0, 100)]
                         + [np_d_basic(x[150:250], variables, **kw)[50:, 0]])  # the last 50, in a batch of 100
    first = np.sort(raw[:200])
    k = int(np.argmax(np.diff(first[80:120]))) + 80                 # a bias in a gap between two logits
    bias = -(first[k] + first[k + 1]) / 2
    logits = raw + bias
    variables["4x4/Dense1/bias"] = np.array([bias], np.float32)
    want = int((logits[:200] < 0).sum())
    assert np.abs(logits[:200]).min() > 1e-4 and 0 < want < 200
    assert (logits[200:] < 0).any()  # counting the last 50 too would give another number

    classifiers = tmp_path / "classifiers"
    classifiers.mkdir()
    write_network_pickle(classifiers / "celebahq-classifier-27-beard.pkl", monkeypatch, variables, kw)
    out = tmp_path / "out"
    r = cc.release_attribute_accuracy(images, "beard", classifiers, out_dir=out)
    assert (r.total, r.counted, r.count) == (250, 200, want)
    assert r.not_counted == names[200:]
    assert r.share == want / 200 and r.accuracy == 1 - want / 200   # file 27 reads No_Beard
    assert r.classifier.endswith("celebahq-classifier-27-beard.pkl") and r.attribute == "beard"
    assert (out / "acc.txt").read_text() == f"{want}\n"
    cc.release_attribute_accuracy(images, 27, classifiers, out_dir=out)
    assert (out / "acc.txt").read_text() == f"{want}\n{want}\n"    # appended, as the release's mode 'a'
    assert [p.name for p in out.iterdir()] == ["acc.txt"]         # no temporary file left


def test_release_accuracy_refuses_bad_folders(tmp_path, monkeypatch):
    kw = dict(resolution=16, num_channels=3, fmap_base=32, fmap_max=8)
    classifiers = tmp_path / "c"
    classifiers.mkdir()
    write_network_pickle(classifiers / "celebahq-classifier-01-smiling.pkl", monkeypatch,
                         d_basic_variables(np.random.default_rng(4), **kw), kw)
    few = tmp_path / "few"
    few.mkdir()
    for i in range(99):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(few / f"{i}.png")
    with pytest.raises(MetricError, match="99 entries.*at least 100"):
        cc.release_attribute_accuracy(few, "smiling", classifiers)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(few / "big.png")
    with pytest.raises(MetricError, match=r"big.png is 32x32 px.*16x16"):
        cc.release_attribute_accuracy(few, "smiling", classifiers)


def test_cli_prints_the_count_and_reports_a_missing_file(tmp_path, capsys):
    code = cc.main(["--images", str(tmp_path), "--attribute", "bushy-eyebrows", "--classifiers", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: missing CelebA-HQ attribute classifier")
    assert "celebahq-classifier-16-bushy-eyebrows.pkl" in err and len(err.splitlines()) == 1
