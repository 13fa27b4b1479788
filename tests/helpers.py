"""Plain helpers shared by the test folders (fixtures are in ``conftest.py``): the repository and
reference-data paths, the tiny model and training configs, and small runners.

Import as ``from tests.helpers import ...`` (every test folder is a package)."""
from __future__ import annotations

import copy
import json
import os
import zlib
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _find_reference() -> Path:
    """``shared/reference`` beside the repository; for a clone of a local checkout (CI clones main
    elsewhere), beside the checkout it was cloned from; ``IAFACES_REFERENCE`` overrides both."""
    import subprocess

    if os.environ.get("IAFACES_REFERENCE"):
        return Path(os.environ["IAFACES_REFERENCE"])
    here = ROOT.parent / "shared" / "reference"
    if here.is_dir():
        return here
    try:
        origin = subprocess.run(["git", "-C", str(ROOT), "config", "remote.origin.url"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin and Path(origin).is_dir():
        beside_origin = Path(origin).resolve().parent / "shared" / "reference"
        if beside_origin.is_dir():
            return beside_origin
    return here


REFERENCE = _find_reference()


def fill_official(entries, dtype=torch.float64):
    """Fill an official state_dict by the documented rule (reference README section 10)."""
    sd = {}
    for e in entries:
        if "constant" in e:
            sd[e["key"]] = torch.tensor(e["constant"], dtype=dtype).reshape(e["shape"])
        else:
            rng = np.random.default_rng(zlib.crc32(e["key"].encode("utf-8")))
            sd[e["key"]] = torch.from_numpy(rng.standard_normal(e["shape"]) * e["std"] + e["mean"]).to(dtype)
    return sd


# ------------------------------------------------------------------------------------ tiny models
#: The image size of every tiny model.
SIZE = 32
#: Arguments of the tiny networks (scalable architectures; feat_size 8 is their default).
TINY_ENCODER = {"size": SIZE, "channel": 8, "channel_max": 32, "feat_size": 8, "content_channels": 32, "comp_dim": 16}
TINY_GENERATOR = {"channel_base": 512, "channel_max": 32}
TINY_DISCRIMINATOR = {"channel_base": 256, "channel_max": 32}


def tiny_model_config(arch: str = "iafaces", encoder: Optional[dict] = None, generator: Optional[dict] = None,
                      discriminator: Optional[dict] = None, types: Optional[dict] = None):
    """A tiny 32-px ``ModelConfig`` of a scalable architecture; ``encoder``/``generator``/
    ``discriminator`` override the tiny arguments, ``types`` names the network classes."""
    from model.config import build_model_config

    return build_model_config(arch, encoder={**TINY_ENCODER, **(encoder or {})},
                              generator={**TINY_GENERATOR, **(generator or {})},
                              discriminator={**TINY_DISCRIMINATOR, **(discriminator or {})}, types=types)


#: The training config a tiny checkpoint names: SynthFaces at the tiny size.
TINY_CHECKPOINT_CONFIG = {"exp_id": "tiny", "data_set": {"type": "SynthFaces", "args": {"size": SIZE, "seed": 0}}}


def save_tiny_checkpoint(path: Path, arch: str = "iafaces", seed: int = 0, discriminator: bool = False,
                         config: Optional[dict] = None, model_config=None) -> Path:
    """A tiny own-format checkpoint with random weights drawn after ``torch.manual_seed(seed)``
    (encoder, then generator, then the discriminator when asked for) at ``path``."""
    from model import build_networks
    from model.checkpoint import save_model_checkpoint

    mcfg = model_config or tiny_model_config(arch)
    torch.manual_seed(seed)
    E, G, D = build_networks(mcfg, discriminator=discriminator)
    save_model_checkpoint(path, E, G, mcfg, config=copy.deepcopy(TINY_CHECKPOINT_CONFIG if config is None else config),
                          discriminator=D)
    return Path(path)


# ----------------------------------------------------------------------------- tiny training runs
#: A tiny training config (32 px SynthFaces, CAM, the release's loss without LPIPS): 6 steps an epoch.
TINY_CONFIG = {
    "seed": 5,
    "exp_id": "tiny",
    "data_name": "synthfaces",
    "model_arch": "iafaces_cam",
    "encoder": {"type": "Encoder", "args": dict(TINY_ENCODER)},
    "generator": {"type": "Generator", "args": dict(TINY_GENERATOR)},
    "discriminator": {"type": "Discriminator", "args": dict(TINY_DISCRIMINATOR)},
    "data_set": {"type": "SynthFaces", "args": {"size": SIZE, "seed": 1, "num_train": 24, "num_val": 8,
                                                "num_test": 8}},
    "data_loader": {"batch_size": 4, "num_workers": 0, "num_val_samples": 8},
    "loss": {"type": "IAFacesLoss", "args": {"p_loss_weight": 0, "d_reg_every": 2, "r1": 1}},
    "trainer": {"epochs": 10, "update_ckpt": 0, "save_period": 0, "val_period": 1, "log_period": 1,
                "vis_period": 3, "vis_img_num": 2, "verbosity": 0, "tensorboard": False},
}


def merged(base: dict, **blocks: Any) -> dict:
    """A deep copy of ``base`` with ``blocks`` laid over it: objects merge key by key, ``None``
    removes a key, an object whose ``"type"`` differs from the one it meets replaces it whole."""
    def lay(old: Any, new: Any) -> Any:
        if not (isinstance(old, dict) and isinstance(new, dict)) or ("type" in new and new["type"] != old.get("type")):
            return copy.deepcopy(new)
        out = copy.deepcopy(old)
        for k, v in new.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = lay(out.get(k), v)
        return out

    return lay(copy.deepcopy(base), blocks)


def tiny_config(**blocks: Any) -> dict:
    """A fresh copy of :data:`TINY_CONFIG` with ``blocks`` laid over it (:func:`merged`)."""
    return merged(TINY_CONFIG, **blocks)


def write_config(path: Path, cfg: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg))
    return path


def run_train(args, cwd):
    """``train.main(args)`` in the folder ``cwd``."""
    import train

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return train.main(args)
    finally:
        os.chdir(old)


def tiny_trainer(tmp_path: Path, cfg: Optional[dict] = None):
    """An ``IAFacesTrainer`` on the CPU for the training config dict ``cfg`` (default: the tiny one)."""
    from data_loader.registry import build_dataset
    from trainer.config import load_config
    from trainer.iafaces_trainer import IAFacesTrainer

    tmp_path.mkdir(parents=True, exist_ok=True)
    tcfg = load_config(write_config(tmp_path / "tiny.json", cfg if cfg is not None else tiny_config()))
    return IAFacesTrainer(tcfg, build_dataset(tcfg.data_set, "train"), build_dataset(tcfg.data_set, "val"),
                          tmp_path / "run", tmp_path / "log", torch.device("cpu"))


# ---------------------------------------------------------------------------------------- output
def one_error_line(capsys, *words) -> str:
    """The last stderr line: an ``error:`` line holding every one of ``words``, no traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error:"), err
    assert not any("Traceback" in line for line in err), err
    for w in words:
        assert w in err[-1], err[-1]
    return err[-1]


def snapshot(folder: Path) -> dict:
    """Every file under ``folder``: relative path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def save_faces(folder: Path, ids=(29000, 29001), size: int = SIZE, seed: int = 0) -> Path:
    """SynthFaces faces ``face<k>.png`` (test-split ids by default) in ``folder``."""
    from PIL import Image

    from data_loader.synthfaces import render, sample_factors

    folder.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(ids):
        Image.fromarray(render(sample_factors(seed, i), size)).save(folder / f"face{k}.png")
    return folder


def official_model_config(layout: dict):
    """The ``ModelConfig`` of one entry of the reference's ``official_layout.json``."""
    from model.config import build_model_config

    return build_model_config(layout["model_arch"], layout["encoder_args"], layout["generator_args"],
                              layout["discriminator_args"])


def editing_work(root: Path) -> dict:
    """What the editing tests work on, under ``root``: a tiny SynthFaces-marked checkpoint
    ``ckpt/tiny.pth`` (seed 0, no discriminator; its boundaries go to ``ckpt/boundaries/tiny``)
    and four held-out input faces ``faces/face<k>.png`` (face2 is 48 px, face3 grayscale)."""
    from PIL import Image

    from data_loader.synthfaces import render, sample_factors

    ckpt = save_tiny_checkpoint(root / "ckpt" / "tiny.pth")
    faces = root / "faces"
    faces.mkdir()
    for k, i in enumerate((29000, 29001, 29002, 29003)):  # test-split faces (held out)
        im = Image.fromarray(render(sample_factors(0, i), 48 if k == 2 else SIZE))
        if k == 3:
            im = im.convert("L")
        im.save(faces / f"face{k}.png")
    return {"root": root, "ckpt": ckpt, "faces": faces, "boundaries": root / "ckpt" / "boundaries" / "tiny"}


def read_image(path) -> torch.Tensor:
    """An image file as float [3, H, W] in [-1, 1]."""
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def align_work(root: Path, photo: np.ndarray) -> dict:
    """What the alignment tests of the editing tools work on, under ``root``: a tiny 32-px
    SynthFaces-marked checkpoint ``tiny.pth``, the astronaut ``photo``, a photo without a face and
    a canvas with two faces."""
    import cv2
    from PIL import Image

    ckpt = save_tiny_checkpoint(root / "tiny.pth", config={"data_set": TINY_CHECKPOINT_CONFIG["data_set"]})
    Image.fromarray(photo).save(root / "astronaut.png")
    rng = np.random.default_rng(1)
    Image.fromarray(cv2.GaussianBlur(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8), (0, 0), 3)).save(
        root / "wall.png")
    canvas = np.full((600, 1100, 3), 200, np.uint8)
    canvas[40:552, 0:512] = photo
    canvas[100:548, 620:1068] = cv2.resize(np.ascontiguousarray(photo[:, ::-1]), (448, 448),
                                           interpolation=cv2.INTER_AREA)
    Image.fromarray(canvas).save(root / "two.png")
    return {"root": root, "ckpt": str(ckpt), "photo": str(root / "astronaut.png"), "wall": str(root / "wall.png"),
            "two": str(root / "two.png")}


def face_mask(face) -> np.ndarray:
    """An aligned face's paste-back mask over its whole photo, float32 [H, W]."""
    (x0, y0, x1, y1), m = face.mask()
    full = np.zeros(face.photo.shape[:2], np.float32)
    full[y0:y1, x0:x1] = m
    return full


def release_removal(ids, excluded) -> list:
    """The release's arc_dis.py exclusion loop, run as it is (popping while enumerating, so an id
    right after a removed one stays): the reference the Arc-dis tests compare with."""
    ids = list(ids)
    for i, name in enumerate(ids):
        if name in excluded:
            ids.pop(i)
    return ids
