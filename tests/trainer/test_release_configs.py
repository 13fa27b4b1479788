"""The release's own configs and checkpoints keep the release's behaviour (issue 22, item 5).

A config in the release's form (the four JSON files of ``official_configs/``, read from the shared
reference data, or the config inside a released checkpoint) trains as the release does: the LR
schedulers it lists are never created, the training list keeps the ids that the validation list
also holds, and the hole masks follow ``data_name`` (CelebA-HQ p 0.5 / width 16, FFHQ p 0.7 /
width 70); ``train.py`` says each mapping in a ``notice:`` line. A config in the project's form keeps
the defaults for new work. The editing scripts name outputs as the release (``00123.png`` ->
``123.png``) for such checkpoints."""
import collections
import copy
import json
import pathlib
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from data_loader.masks import MaskSettings, mask_settings
from model.variants.legacy import is_release_config
from tests.helpers import REFERENCE, SIZE, one_error_line, save_tiny_checkpoint
from trainer.config import load_config, parse_config

CONFIGS = REFERENCE / "official_configs"
NAMES = ("iafaces-celebahq", "iafaces-cam-celebahq", "iafaces-ffhq", "iafaces-cam-ffhq")
#: The release's hole masks per data_name (reference README, section 6).
RELEASE_MASKS = {"celebahq": MaskSettings(0.5, 16), "ffhq": MaskSettings(0.7, 70)}
LAUNCHER = {"world_size": 2, "distributed": True, "local_rank": 0, "global_rank": 0}


def release_json(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def masks_of(cfg) -> MaskSettings:
    """The hole masks training draws for ``cfg`` (the call IAFacesTrainer makes)."""
    dl = cfg.data_loader
    return mask_settings(cfg.data_set.type, cfg.model_config().encoder.size, dl.mask_p, dl.mask_width, dl.mask_size)


def resolve(argv, capsys):
    """``train.py``'s config resolution for ``argv``: (config, notice lines without the prefix)."""
    import train

    capsys.readouterr()
    cfg, _, _ = train.resolve_config(train.build_parser().parse_args(argv))
    err = capsys.readouterr().err.splitlines()
    return cfg, [line[len("notice: "):] for line in err if line.startswith("notice: ")]


# ---------------------------------------------------------------------------------- train.py -c
@pytest.mark.parametrize("name", NAMES)
def test_the_release_config_trains_as_the_release(name, capsys):
    data = release_json(name)
    cfg, notices = resolve(["-c", str(CONFIGS / f"{name}.json")], capsys)
    assert cfg.trainer.lr_schedulers == "ignore"  # listed, never stepped
    assert cfg.lr_scheduler_G.args == {"gamma": 0.99} and cfg.lr_scheduler_D.args == {"gamma": 0.99}
    assert cfg.data_set.args.train_overlap == "official"
    assert masks_of(cfg) == RELEASE_MASKS[data["data_name"]]
    assert cfg.editing.output_names == "release"
    assert cfg.trainer.epochs == data["trainer"]["epochs"] and cfg.optimizer_G.lr == 0.002
    said = "\n".join(notices)
    for words in (("release's own form",), ("lr_scheduler_G and lr_scheduler_D", '"ignore"'),
                  ('train_overlap "official"',), (f"p {RELEASE_MASKS[data['data_name']].p:g}",
                                                  f"width {RELEASE_MASKS[data['data_name']].width}"),
                  ('output_names "release"',)):
        assert any(all(w in n for w in words) for n in notices), (words, said)
    if data["data_name"] == "ffhq":
        assert cfg.data_set.type == "FFHQDataset" and "read as FFHQDataset" in said


@pytest.mark.parametrize("name", ["iafaces-celebahq", "iafaces-ffhq"])
def test_a_project_config_keeps_the_defaults_for_new_work(name, capsys):
    """The release's JSON with one project key is a project config: nothing is mapped."""
    data = {**release_json(name), "description": "mine"}
    cfg = parse_config(data)
    assert cfg.trainer.lr_schedulers == "apply" and cfg.data_set.args.train_overlap == "exclude"
    assert cfg.editing.output_names == "stem" and cfg.data_set.type == "CelebAHQDataset" and cfg.notes == []


PROJECT_TOUCHES = {
    "a top-level project key": lambda d: d.update(description="x"),
    "trainer.lr_schedulers": lambda d: d["trainer"].update(lr_schedulers="ignore"),
    "data_set.args.train_overlap": lambda d: d["data_set"]["args"].update(train_overlap="official"),
    "data_loader.mask_p": lambda d: d["data_loader"].update(mask_p=0.7),
    "a typed loss": lambda d: d.update(loss={"type": "IAFacesLoss", "args": {}}),
    "a project generator option": lambda d: d["generator"]["args"].update(cam_placement="aligned"),
    "a project data set": lambda d: d["data_set"].update(type="FFHQDataset"),
    "another data_name": lambda d: d.update(data_name="custom"),
    "a scalable architecture": lambda d: d.update(model_arch="iafaces_cam"),
    "no data set": lambda d: d.pop("data_set"),
}


@pytest.mark.parametrize("touch", PROJECT_TOUCHES, ids=str)
def test_the_release_form_is_recognised_by_its_keys(touch):
    data = release_json("iafaces-cam-ffhq")
    assert is_release_config(data) and is_release_config({**data, **LAUNCHER})
    assert is_release_config({k: v for k, v in data.items() if not k.startswith("lr_scheduler")})
    PROJECT_TOUCHES[touch](data)
    assert not is_release_config(data)


# ------------------------------------------------------------------ train.py -r released.pth
def write_released(path: pathlib.Path, config: dict, monkeypatch) -> pathlib.Path:
    """A file in the layout of the reference's ``official_checkpoint_format_sample.pth``: the
    release's top-level keys, a pickled ``parse_config.ConfigParser`` holding the config as nested
    OrderedDicts with PosixPath members, OrderedDict state dicts of tiny tensors."""
    module = types.ModuleType("parse_config")

    class ConfigParser:
        pass

    ConfigParser.__module__, ConfigParser.__qualname__ = "parse_config", "ConfigParser"
    module.ConfigParser = ConfigParser
    monkeypatch.setitem(sys.modules, "parse_config", module)
    parser = ConfigParser.__new__(ConfigParser)
    parser._config = json.loads(json.dumps(config), object_pairs_hook=collections.OrderedDict)
    parser.resume = None
    parser._save_dir = pathlib.PosixPath(f"saved/models/{config['exp_id']}/0412_101010")
    parser._log_dir = pathlib.PosixPath(f"saved/log/{config['exp_id']}/0412_101010")
    parser.log_levels = {0: 30, 1: 20, 2: 10}
    sd = collections.OrderedDict([("conv.weight", torch.zeros(2, 3))])
    adam = {"state": {}, "param_groups": [{"lr": 0.002, "betas": (0, 0.99), "params": [0]}]}
    torch.save({"epoch": 5, "iteration": 1000, "state_dict_D": sd, "state_dict_G": sd, "state_dict_E": sd,
                "e_ema": sd, "g_ema": sd, "optimizer_G": adam, "optimizer_D": copy.deepcopy(adam),
                "config": parser, "avg_mse": torch.tensor(0.02)}, path)
    return path


def test_a_released_ffhq_checkpoint_resumes_with_ffhq_masks(tmp_path, monkeypatch, capsys):
    import train

    path = write_released(tmp_path / "iafaces-ffhq.pth", {**release_json("iafaces-ffhq"), **LAUNCHER}, monkeypatch)
    # The tensors are tiny: the bound on what a config may allocate is not what is tested here.
    monkeypatch.setattr(train, "check_model_sizes", lambda *args: None)
    cfg, notices = resolve(["-r", str(path)], capsys)
    assert masks_of(cfg) == MaskSettings(0.7, 70) and cfg.data_set.type == "FFHQDataset"
    assert cfg.trainer.lr_schedulers == "ignore" and cfg.data_set.args.train_overlap == "official"
    said = "\n".join(notices)
    assert "world_size" in said and "read as FFHQDataset" in said and "p 0.7, width 70" in said
    # The same mapping as train.py -c with the release's JSON.
    assert cfg.to_dict() == load_config(CONFIGS / "iafaces-ffhq.json").to_dict()


# ---------------------------------------------------------------------------------- output names
@pytest.fixture(scope="module")
def ffhq_faces(tmp_path_factory):
    """Two 32-px inputs named as FFHQ files, one with a zero-padded id."""
    folder = tmp_path_factory.mktemp("ffhq")
    rng = np.random.default_rng(0)
    for name in ("00123.png", "45.png"):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny checkpoints whose training config is the release's FFHQ config (as a released file
    holds it), that config trained by this project, and a project config."""
    root = tmp_path_factory.mktemp("ckpt")
    released = {**release_json("iafaces-ffhq"), **LAUNCHER}
    return {"released": save_tiny_checkpoint(root / "released.pth", config=released),
            "trained": save_tiny_checkpoint(root / "trained.pth",
                                            config=load_config(CONFIGS / "iafaces-ffhq.json").to_dict()),
            "project": save_tiny_checkpoint(root / "project.pth")}


def _names(folder: pathlib.Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))


RELEASE_NAMES = ["123.png", "45.png", "real/123.png", "real/45.png"]
STEMS = ["00123.png", "45.png", "real/00123.png", "real/45.png"]


def reconstruct(ckpt, faces, out, *flags) -> list[str]:
    """Run reconstruction.py with --save_real; the PNGs it wrote (checked to be the right inputs)."""
    import reconstruction

    assert reconstruction.main(["--resume", str(ckpt), "--data_path", str(faces), "--out", str(out), "--device",
                                "cpu", "--save_real", *flags]) == 0
    names = _names(out)
    padded = "real/00123.png" if "real/00123.png" in names else "real/123.png"
    src = np.asarray(Image.open(faces / "00123.png").convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(out / padded)), src)  # the right input behind the name
    return names


@pytest.mark.parametrize("kind", ["released", "trained"])
def test_reconstruction_names_ffhq_outputs_as_the_release(kind, ffhq_faces, checkpoints, tmp_path):
    assert reconstruct(checkpoints[kind], ffhq_faces, tmp_path / "default") == RELEASE_NAMES
    assert reconstruct(checkpoints[kind], ffhq_faces, tmp_path / "stem", "--names", "stem") == STEMS


def test_project_checkpoints_keep_the_stems_unless_asked(ffhq_faces, checkpoints, tmp_path):
    assert reconstruct(checkpoints["project"], ffhq_faces, tmp_path / "default") == STEMS
    assert reconstruct(checkpoints["project"], ffhq_faces, tmp_path / "release", "--names", "release") == RELEASE_NAMES


def test_attribute_edits_named_as_the_release_and_transfers_keep_the_stem(ffhq_faces, checkpoints, tmp_path):
    """attr_manipulation.py writes ``123.png`` as the release's script; component_transfer.py keeps
    ``00123.png``, as the release's (it names outputs by the target's file name)."""
    import attr_manipulation
    import component_transfer
    from editing import Editor
    from editing.boundaries.record import Boundary

    ckpt = checkpoints["released"]
    editor = Editor.from_checkpoint(ckpt, device="cpu")
    normals = torch.nn.functional.normalize(torch.randn(4, editor.comp_dim, generator=torch.Generator().manual_seed(0)),
                                            dim=1)
    Boundary("Mouth_Slightly_Open", normals, torch.zeros(4), [1.0] * 4, [1.0] * 4, {"pos": 1, "neg": 1},
             {"type": "test"}, editor.fingerprint(), protocol={"recipe": "release"}
             ).save(tmp_path / "b" / "Mouth_Slightly_Open.pt")
    out = tmp_path / "attr"
    assert attr_manipulation.main(["--resume", str(ckpt), "--data_path", str(ffhq_faces), "--attr", "mouth_open",
                                   "--boundary_dir", str(tmp_path / "b"), "--out", str(out), "--device", "cpu"]) == 0
    assert _names(out) == ["123.png", "45.png"]
    out = tmp_path / "transfer"
    assert component_transfer.main(["--resume", str(ckpt), "--target", str(ffhq_faces), "--reference",
                                    str(ffhq_faces / "45.png"), "--component", "mouth", "--out", str(out),
                                    "--device", "cpu"]) == 0
    assert _names(out) == ["00123.png", "45.png"]


def test_release_names_that_meet_are_refused(checkpoints, tmp_path, capsys):
    import reconstruction

    faces = tmp_path / "faces"
    faces.mkdir()
    for name in ("00123.png", "123.png"):
        Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(faces / name)
    out = tmp_path / "out"
    assert reconstruction.main(["--resume", str(checkpoints["released"]), "--data_path", str(faces), "--out",
                                str(out), "--device", "cpu"]) == 2
    one_error_line(capsys, "123.png", "--names stem")
    assert not out.exists() or _names(out) == []
