"""Makes the DeepFace ArcFace golden data of tests/evaluation/test_deepface_arcface.py.

Two steps, see tests/data/deepface_README.md:

* ``python tests/data/deepface_make_golden.py images`` (project environment): the test images
  ``deepface_images/*.png`` (skimage's astronaut and variants, SynthFaces renders, no-face images).
* ``python tests/data/deepface_make_golden.py golden`` in a separate environment with the real
  ``deepface==0.0.75`` and TensorFlow 2.12: builds DeepFace's ArcFace Keras model with DeepFace's
  own code, fills every weight by :func:`fill`, saves it with Keras ``save_weights`` (the layout of
  ``arcface_weights.h5``) and records what DeepFace computes on the test images:
  ``deepface_golden.json`` (layout, detections, regions, pair distances) and
  ``deepface_golden.npz`` (preprocessed inputs as uint8 x 255, embeddings).

The weight file (137 MB) is not stored: the test rebuilds it from the recorded layout and :func:`fill`.
"""
import json
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "deepface_images"
GOLDEN_JSON = HERE / "deepface_golden.json"
GOLDEN_NPZ = HERE / "deepface_golden.npz"
PAIRS = [("astro_crop", "astro_dark"), ("astro_crop", "astro_rot-12"), ("astro_rot20", "synth3"),
         ("astro_small", "synth5"), ("synth0", "synth8"), ("astro_crop", "coffee"), ("synth11", "synth3")]


def fill(name: str, shape) -> np.ndarray:
    """The seeded value of the Keras weight ``name`` (e.g. ``conv1_conv/kernel:0``), float32:
    standard normals from ``default_rng(crc32(name))``, scaled so that activations stay moderate."""
    z = np.random.default_rng(zlib.crc32(name.encode("utf-8"))).standard_normal(tuple(shape))
    kind = name.split("/")[-1].split(":")[0]
    if kind == "kernel":
        z = z * (1.0 / np.sqrt(np.prod(shape[:-1])))
    elif kind == "gamma":
        z = 1.0 + 0.1 * z
    elif kind in ("beta", "moving_mean", "bias"):
        z = 0.02 * z
    elif kind == "moving_variance":
        z = 1.0 + 0.5 * np.abs(z)
    elif kind == "alpha":
        z = 0.25 + 0.05 * z
    else:
        raise ValueError(f"unexpected weight {name}")
    return z.astype(np.float32)


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def make_images() -> None:
    import cv2
    import skimage.data

    sys.path.insert(0, str(HERE.parents[1]))
    from data_loader.synthfaces import render, sample_factors

    IMAGES.mkdir(exist_ok=True)
    astro = skimage.data.astronaut()[:, :, ::-1]
    crop = np.ascontiguousarray(astro[10:230, 110:330])
    out = {"astro_crop": crop, "astro_dark": (crop * 0.45).astype(np.uint8),
           "astro_small": cv2.resize(crop, (110, 110), interpolation=cv2.INTER_AREA),
           "coffee": np.ascontiguousarray(skimage.data.coffee()[::3, ::3, ::-1])}
    for angle in (-12, 20):
        m = cv2.getRotationMatrix2D((220, 120), angle, 1.0)
        out[f"astro_rot{angle}"] = cv2.warpAffine(astro, m, (512, 512))[10:230, 110:330]
    for i in (0, 3, 5, 8, 11):
        out[f"synth{i}"] = render(sample_factors(0, i), 256)[:, :, ::-1]
    for name, img in out.items():
        cv2.imwrite(str(IMAGES / f"{name}.png"), img, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def make_golden() -> None:
    import importlib.metadata
    import os
    import tempfile
    from unittest import mock

    import cv2
    import h5py
    import PIL
    import tensorflow as tf

    home = tempfile.mkdtemp(prefix="deepface_golden_")
    os.environ["DEEPFACE_HOME"] = home
    weights_dir = Path(home) / ".deepface" / "weights"
    weights_dir.mkdir(parents=True)
    h5 = weights_dir / "arcface_weights.h5"


    from deepface import DeepFace
    from deepface.basemodels import ArcFace
    from deepface.commons import functions

    h5.touch()  # loadModel checks the file exists before it loads it
    with mock.patch.object(tf.keras.models.Model, "load_weights", lambda self, p: None):
        model = ArcFace.loadModel()
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([fill(w.name, w.shape) for w in layer.weights])
    h5.unlink()
    model.save_weights(str(h5))

    layout = []
    with h5py.File(h5, "r") as f:
        root_attrs = {k: _text(v) for k, v in f.attrs.items() if k != "layer_names"}
        for name in map(_text, f.attrs["layer_names"]):
            weights = []
            for wn in map(_text, f[name].attrs["weight_names"]):
                ds = f[name][wn]
                assert np.array_equal(ds[()], fill(wn, ds.shape)), wn
                weights.append({"name": wn, "shape": list(ds.shape), "dtype": str(ds.dtype)})
            layout.append({"layer": name, "weights": weights})

    names = sorted(p.stem for p in IMAGES.glob("*.png"))
    inputs = np.zeros((len(names), 112, 112, 3), np.uint8)
    embeddings = np.full((len(names), 512), np.nan, np.float32)
    detected, regions = {}, {}
    for i, name in enumerate(names):
        path = str(IMAGES / f"{name}.png")
        try:
            pre, region = functions.preprocess_face(path, target_size=(112, 112), detector_backend="opencv",
                                                    return_region=True)
        except ValueError:
            detected[name], regions[name] = False, None
            continue
        detected[name], regions[name] = True, [int(v) for v in region]
        inputs[i] = np.rint(pre[0] * 255).astype(np.uint8)
        assert np.array_equal(inputs[i].astype(np.float32) / 255, pre[0])
        embeddings[i] = DeepFace.represent(path, model_name="ArcFace")
    pairs = []
    for a, b in PAIRS:
        try:
            r = DeepFace.verify(str(IMAGES / f"{a}.png"), str(IMAGES / f"{b}.png"), model_name="ArcFace")
            pairs.append({"img1": a, "img2": b, "distance": float(r["distance"]), "verified": bool(r["verified"]),
                          "threshold": float(r["threshold"])})
        except ValueError:
            pairs.append({"img1": a, "img2": b, "distance": None})

    fingerprint = {w["name"]: [float(v) for v in fill(w["name"], w["shape"]).ravel()[:3]]
                   for w in layout[0]["weights"] + layout[-1]["weights"]}
    GOLDEN_JSON.write_text(json.dumps({
        "made_with": {"deepface": importlib.metadata.version("deepface"), "tensorflow": tf.__version__,
                      "keras": tf.keras.__version__, "opencv": cv2.__version__, "numpy": np.__version__,
                      "pillow": PIL.__version__, "h5py": h5py.__version__},
        "h5_root_attrs": root_attrs, "h5_layout": layout, "fill_fingerprint": fingerprint,
        "images": names, "detected": detected, "regions": regions, "pairs": pairs,
    }, indent=1))
    np.savez_compressed(GOLDEN_NPZ, inputs=inputs, embeddings=embeddings)


if __name__ == "__main__":
    {"images": make_images, "golden": make_golden}[sys.argv[1]]()
