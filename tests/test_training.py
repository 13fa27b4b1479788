"""Training: configs, exact resume, atomic checkpoints, LPIPS loading, two-process DDP."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT
from model.checkpoint import FORMAT, atomic_save, load_models
from model.config import ConfigError
from model.convert import official_keys
from trainer.config import load_config, parse_config
from model.lpips import build_lpips

TINY = {
    "seed": 5,
    "exp_id": "tiny",
    "data_name": "synthfaces",
    "model_arch": "iafaces_cam",
    "encoder": {"type": "Encoder", "args": {"size": 32, "channel": 8, "channel_max": 32, "feat_size": 8,
                                            "content_channels": 32, "comp_dim": 16}},
    "generator": {"type": "Generator", "args": {"channel_base": 512, "channel_max": 32}},
    "discriminator": {"type": "Discriminator", "args": {"channel_base": 256, "channel_max": 32}},
    "data_set": {"type": "SynthFaces", "args": {"size": 32, "seed": 1, "num_train": 24, "num_val": 8,
                                                "num_test": 8}},
    "data_loader": {"batch_size": 4, "num_workers": 0, "num_val_samples": 8},
    "loss": {"p_loss_weight": 0, "d_reg_every": 2, "r1": 1},
    "trainer": {"epochs": 10, "update_ckpt": 0, "save_period": 0, "val_period": 1, "log_period": 1,
                "vis_period": 3, "vis_img_num": 2, "verbosity": 0, "tensorboard": False},
}


def write_config(tmp_path, **overrides) -> Path:
    cfg = json.loads(json.dumps(TINY))
    for key, value in overrides.items():
        block, _, field = key.partition("__")
        if field:
            cfg[block][field] = value
        else:
            cfg[block] = value
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    return path


def run_train(args, cwd):
    import train

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return train.main(args)
    finally:
        os.chdir(old)


# ------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("name", ["iafaces-celebahq-256", "iafaces_cam-celebahq-256", "iafaces-ffhq-1024",
                                  "iafaces_cam-ffhq-1024"])
def test_official_configs_build_official_models(name, official_layout):
    from model import build_networks

    cfg = load_config(ROOT / "configs" / f"{name}.json")
    assert cfg.trainer.lr_schedulers == "ignore" and cfg.optimizer_G.lr == 0.002
    assert cfg.loss.d_reg_every == 16 and cfg.loss.r1 == 10 and cfg.data_loader.batch_size == 4
    E, G, D = build_networks(cfg.model_config())
    layout = official_layout[name]
    for net, part in ((E, "e_ema"), (G, "g_ema"), (D, "d")):
        assert official_keys(net) == [(e["key"], tuple(e["shape"])) for e in layout[part]]


def test_default_config_is_valid():
    cfg = load_config(ROOT / "configs" / "synthfaces.json")
    assert cfg.data_set.type == "SynthFaces" and cfg.loss.p_loss_weight == 0


def test_config_errors_list_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'epoch'.*valid keys:.*epochs"):
        parse_config({**TINY, "trainer": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'foo'.*valid keys:.*seed"):
        parse_config({**TINY, "foo": 1})
    with pytest.raises(ConfigError, match="batch_size.*must be int"):
        parse_config({**TINY, "data_loader": {"batch_size": "4"}})
    with pytest.raises(ConfigError, match="missing required"):
        parse_config({k: v for k, v in TINY.items() if k != "model_arch"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)


# ------------------------------------------------------------------------------------------ resume
def _final_state(run_root: Path) -> dict:
    (ckpt,) = list(run_root.glob("models/tiny/*/latest.pth"))
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def test_exact_resume_matches_uninterrupted_run(tmp_path):
    cfg = write_config(tmp_path)
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


def test_checkpoint_loads_for_editing(tmp_path):
    cfg = write_config(tmp_path)
    assert run_train(["-c", str(cfg), "--iters", "2", "--device", "cpu", "--save_dir", "s", "--run_id", "r"],
                     tmp_path) == 0
    models = load_models(tmp_path / "s/models/tiny/r/latest.pth", device="cpu")
    assert models.source == "project" and not models.encoder.training
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert models.generator(*models.encoder(x)).shape == (2, 3, 32, 32)


def test_atomic_save_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "latest.pth"
    atomic_save({"v": torch.ones(3)}, path)

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save({"v": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pth"]  # no temp file left


def test_resume_of_non_training_checkpoint_is_a_user_error(tmp_path, capsys):
    from model import build_model_config, build_networks
    from model.checkpoint import save_model_checkpoint

    mcfg = build_model_config("iafaces", encoder={"size": 32, "channel": 8, "channel_max": 32,
                                                  "content_channels": 32, "comp_dim": 16},
                              generator={"channel_base": 512, "channel_max": 32})
    E, G, _ = build_networks(mcfg, discriminator=False)
    save_model_checkpoint(tmp_path / "export.pth", E, G, mcfg)
    assert run_train(["-r", str(tmp_path / "export.pth")], tmp_path) == 2
    assert "no training state" in capsys.readouterr().err
    assert run_train(["-c", str(tmp_path / "missing.json")], tmp_path) == 2


# ------------------------------------------------------------------------------------------ LPIPS
def test_lpips_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(ConfigError, match=r"vgg16-397923af\.pth.*p_loss_weight"):
        build_lpips("pretrained")


def test_lpips_loads_local_vgg_file(tmp_path):
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    path = tmp_path / "vgg.pth"
    torch.save(vgg.state_dict(), path)
    model = build_lpips("pretrained", str(path))
    assert torch.equal(getattr(model.net.slice3, "10").weight, vgg.features[10].weight)
    assert not model.training
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    assert model(a, a).abs().max() < 1e-6 and model(a, b).item() > 0


def test_training_with_random_lpips_backbone(tmp_path):
    cfg = write_config(tmp_path, loss={"p_loss_weight": 1, "lpips_backbone": "random"})
    assert run_train(["-c", str(cfg), "--iters", "2", "--device", "cpu", "--save_dir", "s", "--run_id", "r"],
                     tmp_path) == 0
    assert torch.load(tmp_path / "s/models/tiny/r/latest.pth", weights_only=True)["iteration"] == 2


# ------------------------------------------------------------------------------- section 6 details
def _tiny_trainer(tmp_path, **overrides):
    from data_loader.registry import build_dataset
    from trainer.iafaces_trainer import IAFacesTrainer

    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = load_config(write_config(tmp_path, **overrides))
    return IAFacesTrainer(cfg, build_dataset(cfg.data_set, "train"), build_dataset(cfg.data_set, "val"),
                          tmp_path / "run", tmp_path / "log", torch.device("cpu"))


def test_ema_models_built_separately_and_r1_phase(tmp_path):
    torch.manual_seed(0)
    tr = _tiny_trainer(tmp_path, loss={**TINY["loss"], "d_reg_every": 3})
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

    cam = noisy(_tiny_trainer(tmp_path / "cam"))  # iafaces_cam: trained (and validated) with random noise
    assert cam.model_config.generator.train_noise == "random" and cam.val_noise == "random"
    a, b = cam.validate(), cam.validate()
    assert a == b  # per-image seeded noise: the same every epoch
    torch.manual_seed(0)
    const = noisy(_tiny_trainer(tmp_path / "const", trainer={**TINY["trainer"], "val_noise": "const"}))
    assert const.val_noise == "const" and const.validate()["avg_mse"] != a["avg_mse"]
    with pytest.raises(ConfigError, match="val_noise"):
        parse_config({**TINY, "trainer": {"val_noise": "fixed"}})
    # The official IA-FaceS-256 trains and validates with the noise buffers; CAM-256 with random noise.
    for name, mode in (("iafaces-celebahq-256", "const"), ("iafaces_cam-celebahq-256", "random")):
        assert load_config(ROOT / "configs" / f"{name}.json").model_config().generator.train_noise == mode


# ------------------------------------------------------------------------------------------ DDP
def test_two_process_training_with_gloo(tmp_path):
    """2 gloo processes: EMA copies identical on both ranks after DDP's broadcast (rank 1 validates
    half of the images with its own copies) and validation identical to a single process."""
    from data_loader.registry import build_dataset
    from trainer.iafaces_trainer import IAFacesTrainer

    cfg = write_config(tmp_path, trainer={**TINY["trainer"], "verbosity": 1})
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
    payload = {"epoch": epoch, "iteration": 12345, "avg_mse": 0.5, "config": config,
               "state_dict_E": own_to_official(E), "state_dict_G": own_to_official(G),
               "state_dict_D": own_to_official(D), "e_ema": own_to_official(e_ema), "g_ema": own_to_official(g_ema),
               "optimizer_G": optimizer_state_to_release(st["optimizer_G"], [E, G]),
               "optimizer_D": optimizer_state_to_release(st["optimizer_D"], [D])}
    torch.save(payload, out)
    return {"st": st, "nets": (E, G, D)}


def test_train_from_a_released_checkpoint(tmp_path, reference_dir, capsys):
    from trainer.released import optimizer_state_from_release

    cfg = write_config(tmp_path)
    assert run_train(["-c", str(cfg), "--iters", "3", "--device", "cpu", "--save_dir", "s", "--run_id", "a"],
                     tmp_path) == 0
    released = tmp_path / "released.pth"
    info = _released_from_project(tmp_path / "s/models/tiny/a/latest.pth", released, epoch=1)
    st, (E, G, D) = info["st"], info["nets"]
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
    cfg = write_config(tmp_path, data_set=ds, data_loader={**TINY["data_loader"], "mask_p": 1.0})
    assert run_train(["-c", str(cfg), "--iters", "2", "--device", "cpu", "--save_dir", "s", "--run_id", "r"],
                     tmp_path) == 0
    state = torch.load(tmp_path / "s/models/tiny/r/latest.pth", weights_only=True)
    assert state["iteration"] == 2 and state["epoch"] == 1  # 8 images / batch 4: the epoch ran through


def test_gan_start_skips_the_discriminator_until_then(tmp_path):
    torch.manual_seed(0)
    tr = _tiny_trainer(tmp_path, loss={**TINY["loss"], "g_loss_weight": 0.1, "gan_start": 2})
    batch = next(iter(tr.epoch_batches(0, 0)))
    d0 = [p.detach().clone() for p in tr.D.parameters()]
    for it in range(2):
        tr.iteration = it
        logs = tr.train_step(batch)
        assert "loss_d" not in logs and logs["g_adv"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(d0, tr.D.parameters()))
    tr.iteration = 2
    logs = tr.train_step(batch)
    assert "loss_d" in logs and logs["g_adv"] != 0.0
    assert any(not torch.equal(a, b) for a, b in zip(d0, tr.D.parameters()))


def test_bf16_autocast_trains_on_the_cpu(tmp_path):
    torch.manual_seed(0)
    tr = _tiny_trainer(tmp_path, trainer={**TINY["trainer"], "amp": "bf16"})
    assert tr.amp
    batch = next(iter(tr.epoch_batches(0, 0)))
    g0 = [p.detach().clone() for p in tr.G.parameters()]
    tr.iteration = 0
    logs = tr.train_step(batch)
    assert all(math.isfinite(v) for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(g0, tr.G.parameters()))


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.json")), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_config_is_valid(path):
    cfg = load_config(path)
    cfg.model_config()


def test_speed_report_counts_flops_and_shares(tmp_path, capsys):
    from evaluation import speed

    torch.set_num_threads(1)
    cfg_path = write_config(tmp_path, trainer={**TINY["trainer"], "amp": "bf16", "channels_last": True},
                            loss={**TINY["loss"], "g_loss_weight": 0.1, "gan_start": 0})
    train = speed.measure_training(cfg_path, torch.device("cpu"), steps=1)
    assert train["amp"] == "bf16" and train["channels_last"] and train["gflop"] > 0 and train["seconds"] > 0
    fwd = speed.measure_forward("iafaces", torch.device("cpu"), batch=1, repeats=1, bf16=False)
    fwd_bf16 = speed.measure_forward("iafaces", torch.device("cpu"), batch=1, repeats=1, bf16=True)
    assert fwd["gflop"] == pytest.approx(fwd_bf16["gflop"]) and fwd["gflop"] > 0.01
    peaks = {"fp32": {"conv_gflops": 100.0, "matmul_gflops": 50.0, "peak_gflops": 100.0},
             "bf16": {"conv_gflops": 200.0, "matmul_gflops": 100.0, "peak_gflops": 200.0}}
    text = speed.report({"device": "cpu", "threads": 1, "peaks": peaks, "train": [train], "forward": [fwd]})
    assert f"{train['gflops'] / 200:.0%} of the bf16 peak" in text
    assert f"{fwd['gflops'] / 100:.0%} of the fp32 peak" in text
    assert speed.main(["--parts", "peaks,sprint"]) == 2
    assert "unknown part(s) sprint" in capsys.readouterr().err


def test_box_l1_weight_adds_the_in_box_error(tmp_path):
    from model.boxes import boxes_at, component_box_mask

    m = component_box_mask(32)
    assert m.shape == (1, 1, 32, 32) and m.sum() > 0
    x0, y0, x1, y1 = boxes_at(32)[3]
    assert m[0, 0, y0:y1, x0:x1].min() == 1 and m[0, 0, 0, 0] == 0
    torch.manual_seed(0)
    tr = _tiny_trainer(tmp_path, loss={**TINY["loss"], "g_loss_weight": 0.0, "box_l1_weight": 2.0})
    batch = next(iter(tr.epoch_batches(0, 0)))
    tr.iteration = 0
    logs = tr.train_step(batch)
    assert logs["box_l1"] > 0 and logs["loss_g"] == pytest.approx(logs["l1"] + 2.0 * logs["box_l1"], rel=1e-5)
    with pytest.raises(Exception, match="box_l1_weight"):
        load_config(write_config(tmp_path, loss={**TINY["loss"], "box_l1_weight": -1}))


def test_swap_pairs_supervise_a_swapped_embedding_with_the_rendered_counterfactual(tmp_path):
    """loss.swap_weight: the pairs of an iteration depend on (seed, iteration) only; each truth is
    the target with one component's factors from the reference (it differs from the target only
    around that component); the step logs the swap loss and reaches the encoder through the
    reference's embedding too."""
    from data_loader.synthfaces.dataset import transfer_pairs
    from model.boxes import COMPONENTS, boxes_at

    torch.manual_seed(0)
    tr = _tiny_trainer(tmp_path, loss={**TINY["loss"], "g_loss_weight": 0, "swap_weight": 1.0, "swap_pairs": 3},
                       encoder={"type": "Encoder", "args": {**TINY["encoder"]["args"], "component_input": "crops",
                                                            "crop_size": 8, "content_input": "fill_components"}})
    a, b = tr.swap.batch(7), tr.swap.batch(7)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], tr.swap.batch(8)[0])
    target, reference, truth, take = a
    assert target.shape == truth.shape == (3, 3, 32, 32) and take.shape == (3, 4) and (take.sum(1) == 1).all()
    for k in range(3):
        comp = int(take[k].nonzero())
        x0, y0, x1, y1 = boxes_at(32)[comp]
        changed = (target[k] - truth[k]).abs().sum(0) > 0
        outside = changed.clone()
        outside[max(y0 - 2, 0):y1 + 2, max(x0 - 2, 0):x1 + 2] = False
        assert not outside.any(), COMPONENTS[comp]
    t2, r2, g2 = transfer_pairs(1, [0], [1], ["mouth"], 32)
    assert not torch.equal(t2, g2) and not torch.equal(r2, g2)
    batch = next(iter(tr.epoch_batches(0, 0)))
    tr.iteration = 7
    logs = tr.train_step(batch)
    assert logs["swap_l1"] > 0 and math.isfinite(logs["loss_g"])
    assert logs["loss_g"] == pytest.approx(logs["l1"] + logs["swap_l1"], rel=1e-5)


def test_swap_box_loss_is_the_swap_error_inside_the_swapped_box(tmp_path):
    """loss.swap_box_weight: the mean L1 over each pair's swapped box only; needs the swap pairs."""
    from model.boxes import boxes_at

    torch.manual_seed(0)
    tr = _tiny_trainer(tmp_path, loss={**TINY["loss"], "g_loss_weight": 0, "swap_weight": 1.0, "swap_pairs": 3,
                                       "swap_box_weight": 2.0},
                       encoder={"type": "Encoder", "args": {**TINY["encoder"]["args"], "component_input": "crops",
                                                            "crop_size": 8, "content_input": "fill_components"}})
    batch = next(iter(tr.epoch_batches(0, 0)))
    tr.iteration = 5
    with torch.no_grad():
        _, swapped, truth, _ = tr._swap_forward(batch["image"], batch["mask"])
    take = tr.swap.batch(5)[3]
    err, area = 0.0, 0
    for k in range(3):
        x0, y0, x1, y1 = boxes_at(32)[int(take[k].nonzero())]
        err += float((swapped[k, :, y0:y1, x0:x1] - truth[k, :, y0:y1, x0:x1]).abs().sum())
        area += 3 * (x1 - x0) * (y1 - y0)
    logs = tr.train_step(batch)
    assert logs["swap_box_l1"] == pytest.approx(err / area, rel=1e-4)
    assert logs["loss_g"] == pytest.approx(logs["l1"] + logs["swap_l1"] + 2.0 * logs["swap_box_l1"], rel=1e-5)
    cfg = json.loads(json.dumps(TINY))
    cfg["loss"]["swap_box_weight"] = 1.0
    with pytest.raises(ConfigError, match="swap_box_weight needs the swap pairs"):
        parse_config(cfg)


def test_swap_components_can_swap_both_eyes_at_once(tmp_path):
    """loss.swap_components: a pair drawn as ``eyes`` swaps both eye embeddings; its truth has both
    eyes from the reference, its box loss covers both eye boxes; bad selections are refused with
    the valid names."""
    from data_loader import synthfaces as sf
    from data_loader.synthfaces.dataset import render_batch
    from model.boxes import boxes_at

    torch.manual_seed(0)
    tr = _tiny_trainer(tmp_path, loss={**TINY["loss"], "g_loss_weight": 0, "swap_weight": 1.0, "swap_pairs": 2,
                                       "swap_box_weight": 1.0, "swap_components": ["eyes"]},
                       encoder={"type": "Encoder", "args": {**TINY["encoder"]["args"], "component_input": "crops",
                                                            "crop_size": 8, "content_input": "fill_components"}})
    target, reference, truth, take = tr.swap.batch(3)
    assert take.tolist() == [[True, True, False, False]] * 2
    rng = np.random.default_rng([int(tr.cfg.seed), 0x5A, 3])
    ids = rng.integers(0, len(tr.swap.train_ids), size=(2, 2))
    faces = [sf.sample_factors(tr.swap.seed, int(tr.swap.train_ids[i])) for i in ids[0]]
    refs = [sf.sample_factors(tr.swap.seed, int(tr.swap.train_ids[i])) for i in ids[1]]
    torch.testing.assert_close(truth, render_batch([sf.transfer(f, r, "eyes") for f, r in zip(faces, refs)], 32))
    batch = next(iter(tr.epoch_batches(0, 0)))
    tr.iteration = 3
    with torch.no_grad():
        _, swapped, truth2, _ = tr._swap_forward(batch["image"], batch["mask"])
    boxes = torch.zeros(32, 32)
    for x0, y0, x1, y1 in boxes_at(32)[:2]:
        boxes[y0:y1, x0:x1] = 1
    expected = float(((swapped - truth2).abs() * boxes).sum() / (boxes.sum() * 3 * 2))
    assert tr.train_step(batch)["swap_box_l1"] == pytest.approx(expected, rel=1e-4)
    cfg = json.loads(json.dumps(TINY))
    cfg["loss"]["swap_components"] = ["eyes", "ear"]
    with pytest.raises(ConfigError, match="unknown component 'ear'.*l_eye"):
        parse_config(cfg)


def test_swap_weight_needs_synthfaces(tmp_path):
    cfg = json.loads(json.dumps(TINY))
    cfg["loss"]["swap_weight"] = 1.0
    cfg["data_set"] = {"type": "ImageFolderDataset", "args": {"image_dir": str(tmp_path), "image_size": 32}}
    with pytest.raises(ConfigError, match="swap_weight needs the SynthFaces"):
        parse_config(cfg)
