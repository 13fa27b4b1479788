"""Training (trainer/iafaces_trainer.py through train.py): exact resume, EMA copies and lazy R1,
validation noise, bf16, two-process DDP, released checkpoints, CelebA-HQ as released, the one-code
ablation, and no discriminator when the loss has no adversarial term."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.checkpoint import FORMAT, load_models
from model.config import ConfigError
from tests.helpers import ROOT, TINY_CONFIG, run_train, tiny_config, tiny_trainer, write_config
from trainer.config import load_config, parse_config
from utils.errors import CheckpointError

#: The loss keys of the release's configs (reference official_configs).
RELEASE_LOSS_KEYS = ("g_loss_weight", "p_loss_weight", "d_loss_weight", "l1_loss_weight", "d_reg_every", "r1")
#: The tiny config's loss without its adversarial term (and the discriminator's keys).
NO_ADVERSARIAL = {"type": "IAFacesLoss", "args": {"g_loss_weight": 0, "d_reg_every": None, "r1": None}}


# ------------------------------------------------------------------------------------------ resume
def _final_state(run_root: Path) -> dict:
    (ckpt,) = list(run_root.glob("models/tiny/*/latest.pth"))
    return torch.load(ckpt, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_exact_resume_matches_uninterrupted_run(tmp_path, tiny_config):
    cfg = write_config(tmp_path / "tiny.json", tiny_config)
    n = 10  # crosses an epoch boundary (6 steps per epoch) and several R1 steps
    assert run_train(["-c", str(cfg), "--iters", str(n), "--device", "cpu", "--save_dir", "one",
                      "--run_id", "a"], tmp_path) == 0
    assert run_train(["-c", str(cfg), "--iters", str(n // 2 - 1), "--device", "cpu", "--save_dir", "two",
                      "--run_id", "b"], tmp_path) == 0
    half = tmp_path / "two/models/tiny/b/latest.pth"
    assert torch.load(half, weights_only=True)["iteration"] == n // 2 - 1
    assert run_train(["-r", str(half), "--iters", str(n), "--device", "cpu"], tmp_path) == 0
    a, b = _final_state(tmp_path / "one"), _final_state(tmp_path / "two")
    assert a["iteration"] == b["iteration"] == n and a["epoch"] == b["epoch"] == 1
    assert a["format"] == FORMAT
    for part in ("encoder", "generator", "discriminator", "e_ema", "g_ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key}"
    for part in ("optimizer_G", "optimizer_D"):
        for pid, st in a[part]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, b[part]["state"][pid][k]), f"{part} {pid} {k}"
    # The weights really moved, and the EMA lags behind.
    init_like = a["generator"]["convs.0.conv.weight"]
    assert not torch.equal(a["g_ema"]["convs.0.conv.weight"], init_like)
    # Validation ran at the epoch end, "best" exists, samples were drawn, config copied.
    assert (tmp_path / "one/models/tiny/a/best.pth").is_file()
    assert list((tmp_path / "one/log/tiny/a/samples").glob("*.png"))
    assert json.loads((tmp_path / "one/log/tiny/a/config.json").read_text())["exp_id"] == "tiny"


def test_checkpoint_loads_for_editing(tmp_path, tiny_config):
    cfg = write_config(tmp_path / "tiny.json", tiny_config)
    assert run_train(["-c", str(cfg), "--iters", "2", "--device", "cpu", "--save_dir", "s", "--run_id", "r"],
                     tmp_path) == 0
    models = load_models(tmp_path / "s/models/tiny/r/latest.pth", device="cpu")
    assert models.source == "project" and not models.encoder.training
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert models.generator(*models.encoder(x)).shape == (2, 3, 32, 32)


@pytest.mark.slow
def test_training_with_random_lpips_backbone(tmp_path):
    cfg = write_config(tmp_path / "tiny.json",
                       tiny_config(loss={"args": {"p_loss_weight": 1, "lpips_backbone": "random"}}))
    assert run_train(["-c", str(cfg), "--iters", "2", "--device", "cpu", "--save_dir", "s", "--run_id", "r"],
                     tmp_path) == 0
    assert torch.load(tmp_path / "s/models/tiny/r/latest.pth", weights_only=True)["iteration"] == 2


# ------------------------------------------------------------------------------- section 6 details
def test_ema_models_built_separately_and_r1_phase(tmp_path):
    torch.manual_seed(0)
    tr = tiny_trainer(tmp_path, tiny_config(loss={"args": {"d_reg_every": 3}}))
    # EMA parameters start equal to E and G; the EMA generator has its own noise buffers.
    for a, b in ((tr.e_ema, tr.E), (tr.g_ema, tr.G)):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        assert a is not b
    assert not torch.equal(tr.g_ema.noises.noise_0, tr.G.noises.noise_0)
    # Lazy R1: the counter is increased before the step, so R1 runs at iterations 3, 6, ... (1-based;
    # 16, 32, ... with the official d_reg_every = 16), never at the first one.
    batch = next(iter(tr.epoch_batches(0, 0)))
    ran = []
    for it in range(4):
        tr.iteration = it
        ran.append("r1" in tr.train_step(batch))
    assert [i + 1 for i, r in enumerate(ran) if r] == [3]


def test_validation_noise_is_the_model_default(tmp_path):
    torch.manual_seed(0)

    def noisy(tr):  # fresh generators ignore noise (strengths start at 0)
        with torch.no_grad():
            for name, p in tr.g_ema.named_parameters():
                if name.endswith("noise.strength"):
                    p.fill_(0.5)
        return tr

    cam = noisy(tiny_trainer(tmp_path / "cam"))  # iafaces_cam: trained (and validated) with random noise
    assert cam.model_config.generator.train_noise == "random" and cam.val_noise == "random"
    a, b = cam.validate(), cam.validate()
    assert a == b  # per-image seeded noise: the same every epoch
    torch.manual_seed(0)
    const = noisy(tiny_trainer(tmp_path / "const", tiny_config(trainer={"val_noise": "const"})))
    assert const.val_noise == "const" and const.validate()["avg_mse"] != a["avg_mse"]
    with pytest.raises(ConfigError, match="val_noise"):
        parse_config({**TINY_CONFIG, "trainer": {"val_noise": "fixed"}})
    # The official IA-FaceS-256 trains and validates with the noise buffers; CAM-256 with random noise.
    for name, mode in (("iafaces-celebahq-256", "const"), ("iafaces_cam-celebahq-256", "random")):
        assert load_config(ROOT / "configs" / f"{name}.json").model_config().generator.train_noise == mode


def test_bf16_autocast_trains_on_the_cpu(tmp_path, monkeypatch):
    import trainer.iafaces_trainer as iafaces_trainer

    monkeypatch.setattr(iafaces_trainer, "native_bf16", lambda device: True)  # this CPU may lack it: force it
    torch.manual_seed(0)
    tr = tiny_trainer(tmp_path, tiny_config(trainer={"amp": "bf16"}))
    assert tr.amp
    batch = next(iter(tr.epoch_batches(0, 0)))
    g0 = [p.detach().clone() for p in tr.G.parameters()]
    tr.iteration = 0
    logs = tr.train_step(batch)
    assert all(math.isfinite(v) for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(g0, tr.G.parameters()))


# ------------------------------------------------------------------------------------------ DDP
@pytest.mark.slow
def test_two_process_training_with_gloo(tmp_path):
    """2 gloo processes: EMA copies identical on both ranks after DDP's broadcast (rank 1 validates
    half of the images with its own copies) and validation identical to a single process."""
    from data_loader.registry import build_dataset
    from trainer.iafaces_trainer import IAFacesTrainer

    cfg = write_config(tmp_path / "tiny.json", tiny_config(trainer={"verbosity": 1}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "train.py"), "-c", str(cfg), "--iters", "3", "--device", "cpu", "--save_dir",
           str(tmp_path / "ddp"), "--run_id", "r"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(tmp_path / "ddp/models/tiny/r/latest.pth", weights_only=True)
    assert state["iteration"] == 3
    assert "world size 2" in proc.stdout + proc.stderr
    # 24 training images, 2 ranks x batch 4 -> 3 steps per epoch: validation ran at iteration 3.
    assert state["epoch"] == 1 and math.isfinite(state["monitor_best"])
    # One process, the same EMA weights: the same validation MSE, exactly.
    tcfg = load_config(cfg)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = IAFacesTrainer(tcfg, build_dataset(tcfg.data_set, "train"), build_dataset(tcfg.data_set, "val"),
                             tmp_path / "one", tmp_path / "one_log", torch.device("cpu"))
        one.e_ema.load_state_dict(state["e_ema"])
        one.g_ema.load_state_dict(state["g_ema"])
        assert one.validate()["avg_mse"] == state["monitor_best"]
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- released checkpoints
def _released_from_project(ckpt: Path, out: Path, epoch: int) -> dict:
    """A released-format file (the release's keys and layouts) holding a project checkpoint's state."""
    from model import build_networks
    from model.config import ModelConfig
    from model.convert import own_to_official
    from trainer.released import optimizer_state_to_release

    st = torch.load(ckpt, weights_only=True)
    mcfg = ModelConfig.from_dict(st["model_config"])
    E, G, D = build_networks(mcfg)
    e_ema, g_ema, _ = build_networks(mcfg, discriminator=False)
    for net, key in ((E, "encoder"), (G, "generator"), (D, "discriminator"), (e_ema, "e_ema"), (g_ema, "g_ema")):
        net.load_state_dict(st[key])
    config = {**st["config"], "world_size": 2, "distributed": True, "local_rank": 0, "global_rank": 0}
    config["trainer"] = {k: v for k, v in config["trainer"].items() if k != "lr_schedulers"}  # the release has none
    # The release writes its loss flat, with its own keys only.
    config["loss"] = {k: v for k, v in config["loss"]["args"].items() if k in RELEASE_LOSS_KEYS}
    payload = {"epoch": epoch, "iteration": 12345, "avg_mse": 0.5, "config": config,
               "state_dict_E": own_to_official(E), "state_dict_G": own_to_official(G),
               "state_dict_D": own_to_official(D), "e_ema": own_to_official(e_ema), "g_ema": own_to_official(g_ema),
               "optimizer_G": optimizer_state_to_release(st["optimizer_G"], [E, G]),
               "optimizer_D": optimizer_state_to_release(st["optimizer_D"], [D])}
    torch.save(payload, out)
    return {"st": st, "nets": (E, G, D)}


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A three-step tiny run (its config ``tiny.json``) and a released-format file of its state
    (``released.pth``, at the end of epoch 1)."""
    root = tmp_path_factory.mktemp("released")
    cfg = write_config(root / "tiny.json", tiny_config())
    assert run_train(["-c", str(cfg), "--iters", "3", "--device", "cpu", "--save_dir", "s", "--run_id", "a"],
                     root) == 0
    info = _released_from_project(root / "s/models/tiny/a/latest.pth", root / "released.pth", epoch=1)
    return {"cfg": cfg, "path": root / "released.pth", **info}


def test_train_from_a_released_checkpoint(tmp_path, reference_dir, capsys, released):
    from trainer.released import optimizer_state_from_release

    cfg = released["cfg"]
    st, (E, G, D) = released["st"], released["nets"]
    released = released["path"]
    # Optimizer moments survive the official order/shape round trip.
    back = optimizer_state_from_release(torch.load(released, weights_only=True)["optimizer_G"], [E, G])
    for k, v in st["optimizer_G"]["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(back["state"][k][name], v[name])
    # Continue: weights, EMA, optimizers and the epoch counter from the file; config mapped.
    from data_loader.registry import build_dataset
    from model.checkpoint import read_checkpoint
    from trainer.iafaces_trainer import IAFacesTrainer

    payload, source = read_checkpoint(released)
    tcfg = load_config(cfg)
    tr = IAFacesTrainer(tcfg, build_dataset(tcfg.data_set, "train"), build_dataset(tcfg.data_set, "val"),
                        tmp_path / "t", tmp_path / "tl", torch.device("cpu"), released=payload)
    assert source == "official" and (tr.epoch, tr.iteration, tr.monitor_best) == (1, 6, 0.5)
    for part, net in (("e_ema", tr.e_ema), ("g_ema", tr.g_ema), ("encoder", tr.E), ("discriminator", tr.D)):
        for k, v in net.state_dict().items():
            assert torch.equal(v, st[part][k]), (part, k)
    for opt, key in ((tr.opt_G, "optimizer_G"), (tr.opt_D, "optimizer_D")):
        got = opt.state_dict()["state"]
        for k, v in st[key]["state"].items():
            assert torch.equal(got[k]["exp_avg_sq"], v["exp_avg_sq"]), (key, k)
    capsys.readouterr()
    assert run_train(["-r", str(released), "--epochs", "2", "--iters", "7", "--device", "cpu", "--save_dir", "c",
                      "--run_id", "c"], tmp_path) == 0
    err = capsys.readouterr().err
    assert "world_size" in err  # the launcher entries of the released config are named as dropped
    cont = torch.load(tmp_path / "c/models/tiny/c/latest.pth", weights_only=True)
    assert cont["epoch"] == 1 and cont["iteration"] == 6 + 1  # from the end of epoch 1 (6 steps here), one step
    assert cont["config"]["trainer"]["lr_schedulers"] == "ignore"
    assert not torch.equal(cont["generator"]["convs.0.conv.weight"], st["generator"]["convs.0.conv.weight"])
    # Fine-tune: the weights only, counters at 0.
    assert run_train(["-r", str(released), "--finetune", "--iters", "1", "--device", "cpu", "--save_dir", "f",
                      "--run_id", "f"], tmp_path) == 0
    ft = torch.load(tmp_path / "f/models/tiny/f/latest.pth", weights_only=True)
    assert ft["iteration"] == 1 and ft["epoch"] == 0
    # Nothing left to continue, and the format sample (tiny tensors) fail with one line each.
    for argv, msg in ((["-r", str(released), "--epochs", "1"], "--epochs N > 1"),
                      (["-r", str(reference_dir / "official_checkpoint_format_sample.pth"), "--finetune",
                        "--device", "cpu", "--save_dir", "x"], "")):
        capsys.readouterr()
        assert run_train(argv, tmp_path) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith("error:") and msg in lines[-1]


def test_a_released_checkpoint_takes_another_cam_placement(tmp_path, released, capsys):
    """The CAM box placement (and the training noise) are options, not part of the weights' shapes:
    a config that sets another placement for the released weights is accepted."""
    import train

    cfg = json.loads(released["cfg"].read_text())
    cfg["generator"]["args"]["cam_placement"] = "official"
    path = write_config(tmp_path / "official_placement.json", cfg)
    args = train.build_parser().parse_args(["-r", str(released["path"]), "-c", str(path), "--finetune",
                                            "--device", "cpu"])
    tcfg, payload, source = train.resolve_config(args)
    assert source == "official" and tcfg.model_config().generator.cam_placement == "official"
    assert run_train(["-r", str(released["path"]), "-c", str(path), "--finetune", "--iters", "1", "--device", "cpu",
                      "--save_dir", "f", "--run_id", "f"], tmp_path) == 0


def test_training_on_celebahq_named_as_the_release(tmp_path):
    """CelebA-HQ layout as released: zero-padded ids in the lists, images named str(int(id)).jpg
    (the project used to open 07070.jpg and stop mid-epoch); flips before the OpenCV resize and hole
    masks on the 256-px canvas at this small size."""
    from data_loader.synthfaces import render, sample_factors
    from PIL import Image

    imgs, lists = tmp_path / "CelebA-HQ-img", tmp_path / "celebahq-lists"
    imgs.mkdir()
    lists.mkdir()
    ids = [7070, 12, 29960, 5, 300, 41, 8, 1000, 77, 6]
    for k, i in enumerate(ids):
        Image.fromarray(render(sample_factors(0, k), 48)).save(imgs / f"{i}.jpg")
    (lists / "train.txt").write_text("\n".join(f"{i:05d}" for i in ids[:8]) + "\n")
    (lists / "val.txt").write_text("\n".join(f"{i:05d}" for i in ids[8:]) + "\n")
    ds = {"type": "CelebAHQDataset", "args": {"data_dir": str(lists), "image_dir": str(imgs), "image_size": 32,
                                              "train_overlap": "official"}}
    cfg = write_config(tmp_path / "tiny.json", tiny_config(data_set=ds, data_loader={"mask_p": 1.0}))
    assert run_train(["-c", str(cfg), "--iters", "2", "--device", "cpu", "--save_dir", "s", "--run_id", "r"],
                     tmp_path) == 0
    state = torch.load(tmp_path / "s/models/tiny/r/latest.pth", weights_only=True)
    assert state["iteration"] == 2 and state["epoch"] == 1  # 8 images / batch 4: the epoch ran through


# ------------------------------------------------------------------------------------ one_code
def test_one_code_trains_with_train_py(tmp_path, monkeypatch):
    """configs/synthfaces_one_code.json is the default config (its ``base``) with the one-code
    encoder on the default's trunk; a tiny copy trains with train.py."""
    import dataclasses

    import train
    from model.variants import OneCodeEncoderConfig
    from trainer.config import read_config_data

    raw = json.loads((ROOT / "configs" / "synthfaces_one_code.json").read_text())
    assert raw["base"] == "synthfaces.json" and raw["model_arch"] == "one_code"
    cfg = read_config_data(ROOT / "configs" / "synthfaces_one_code.json")
    base = read_config_data(ROOT / "configs" / "synthfaces.json")
    same = ("model_arch", "exp_id", "description", "encoder")
    assert {k: v for k, v in cfg.items() if k not in same} == {k: v for k, v in base.items() if k not in same}
    trunk = {f.name for f in dataclasses.fields(OneCodeEncoderConfig)}
    assert cfg["encoder"] == {"type": "OneCodeEncoder",
                              "args": {k: v for k, v in base["encoder"]["args"].items() if k in trunk}}
    cfg = tiny_config(**{k: v for k, v in cfg.items() if k not in TINY_CONFIG}, model_arch="one_code", exp_id="oc",
                      encoder={"type": "OneCodeEncoder", "args": TINY_CONFIG["encoder"]["args"]},
                      data_set={"args": {"num_train": 8, "num_val": 4, "num_test": 4}},
                      data_loader={"batch_size": 2, "num_val_samples": 4},
                      trainer={"epochs": 1, "vis_period": 0})
    path = write_config(tmp_path / "oc.json", cfg)
    monkeypatch.chdir(tmp_path)
    assert train.main(["-c", str(path), "--iters", "1", "--device", "cpu", "--save_dir", "s", "--run_id", "r"]) == 0
    state = torch.load(tmp_path / "s/models/oc/r/latest.pth", weights_only=True)
    assert state["model_config"]["arch"] == "one_code" and state["model_config"]["encoder"]["type"] == "OneCodeEncoder"
    # The constant content moved in the training step (E) and only a little in its EMA.
    assert not torch.equal(state["encoder"]["content"], state["e_ema"]["content"])
    for n in ("synthfaces_cam", "synthfaces_cam_official"):
        other = read_config_data(ROOT / "configs" / f"{n}.json")
        assert other["model_arch"] == "iafaces_cam"
        assert other["generator"]["args"]["cam_placement"] == ("official" if n.endswith("official") else "aligned")


# ------------------------------------------------------------------- no adversarial term, no D
def test_no_discriminator_is_built_trained_or_saved_without_the_adversarial_term(tmp_path):
    """g_loss_weight 0: ``tr.D`` and ``tr.opt_D`` are None, no step runs the discriminator, the
    checkpoint holds no ``discriminator`` / ``optimizer_D``; the run resumes and its weights load
    for editing (without a discriminator)."""
    cfg = tiny_config(loss=NO_ADVERSARIAL)
    torch.manual_seed(0)
    tr = tiny_trainer(tmp_path / "t", cfg)
    assert tr.D is None and tr.opt_D is None and tr.D_train is None and len(tr.networks) == 2
    assert not tr.loss.uses_discriminator(0) and not tr.loss.uses_discriminator(10 ** 6)
    assert set(tr.learning_rates()) == {"G"}
    batch = next(iter(tr.epoch_batches(0, 0)))
    for it in range(2):
        tr.iteration = it
        logs = tr.train_step(batch)
        assert "loss_d" not in logs and "r1" not in logs and logs["g_adv"] == 0.0
    state = tr.state_dict()
    assert "discriminator" not in state and "optimizer_D" not in state and "optimizer_G" in state
    path = write_config(tmp_path / "nod.json", cfg)
    assert run_train(["-c", str(path), "--iters", "2", "--device", "cpu", "--save_dir", "s", "--run_id", "r"],
                     tmp_path) == 0
    latest = tmp_path / "s/models/tiny/r/latest.pth"
    saved = torch.load(latest, weights_only=True)
    assert saved["iteration"] == 2 and "discriminator" not in saved and "optimizer_D" not in saved
    assert load_models(latest, device="cpu").discriminator is None
    with pytest.raises(CheckpointError, match="holds no discriminator"):
        load_models(latest, device="cpu", discriminator=True)


def test_a_run_without_discriminator_resumes(tmp_path):
    cfg = tiny_config(loss=NO_ADVERSARIAL)
    path = write_config(tmp_path / "nod.json", cfg)
    assert run_train(["-c", str(path), "--iters", "2", "--device", "cpu", "--save_dir", "s", "--run_id", "r"],
                     tmp_path) == 0
    latest = tmp_path / "s/models/tiny/r/latest.pth"
    assert run_train(["-r", str(latest), "--iters", "3", "--device", "cpu"], tmp_path) == 0
    state = torch.load(latest, weights_only=True)
    assert state["iteration"] == 3 and "discriminator" not in state and "optimizer_D" not in state
