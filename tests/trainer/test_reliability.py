"""Nothing lost, nothing exhausted (issue 24): a resume never moves a run backwards, divergence stops
training without touching the last finite checkpoint, a resume runs the learning rates its config
records, config values are bounded before anything is allocated, and a run that fails at start
leaves no folder behind."""
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_ENCODER, one_error_line, run_train, tiny_config, tiny_trainer, write_config
from trainer.base_trainer import first_non_finite
from trainer.iafaces_trainer import IAFacesTrainer
from utils.errors import TrainingError

CPU = ["--device", "cpu"]


def _iteration(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["iteration"]


def _checkpoints(folder: Path) -> dict:
    """name -> bytes of every checkpoint in a run folder."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.pth"))}


# ----------------------------------------------------------------------------- resume never moves back
@pytest.fixture(scope="module")
def run12(tmp_path_factory):
    """A 12-iteration tiny run ``runs/models/tiny/k`` (two epochs): checkpoint-epoch1 (iteration 6),
    checkpoint-epoch2 and latest (12), best."""
    root = tmp_path_factory.mktemp("run12")
    cfg = write_config(root / "tiny.json", tiny_config(trainer={"save_period": 1}))
    assert run_train(["-c", str(cfg), "--iters", "12", "--save_dir", str(root / "runs"), "--run_id", "k"] + CPU,
                     root) == 0
    return root


def _copy_run(run12: Path, tmp_path: Path) -> Path:
    """A copy of the run under ``tmp_path/runs`` (resume it with ``--save_dir tmp_path/runs``)."""
    shutil.copytree(run12 / "runs", tmp_path / "runs")
    return tmp_path / "runs/models/tiny/k"


def _resume(run: Path, name: str, *args: str) -> int:
    """``train.py -r <run>/<name> --save_dir <its save dir> ARGS`` on the CPU."""
    root = run.parents[2]
    return run_train(["-r", str(run / name), "--save_dir", str(root)] + list(args) + CPU, root.parent)


def test_resuming_an_older_checkpoint_in_place_is_refused_naming_the_newest(run12, tmp_path, capsys):
    run = _copy_run(run12, tmp_path)
    before = _checkpoints(run)
    assert _iteration(run / "checkpoint-epoch1.pth") == 6 and _iteration(run / "latest.pth") == 12
    assert _resume(run, "checkpoint-epoch1.pth", "--iters", "8") == 2
    one_error_line(capsys, "iteration 6", f"-r {run / 'latest.pth'}", "(iteration 12)", "--fork", "--overwrite")
    assert _checkpoints(run) == before
    # The newest checkpoint itself continues in place, as before.
    assert _resume(run, "latest.pth", "--iters", "13") == 0
    assert _iteration(run / "latest.pth") == 13


def test_fork_continues_an_older_checkpoint_in_a_new_run_folder(run12, tmp_path, capsys):
    run = _copy_run(run12, tmp_path)
    before = _checkpoints(run)
    assert _resume(run, "checkpoint-epoch1.pth", "--iters", "8", "--fork") == 0
    assert _checkpoints(run) == before  # the old run is untouched
    (fork,) = [p for p in run.parent.iterdir() if p.name != "k"]
    assert _iteration(fork / "latest.pth") == 8
    assert torch.load(fork / "latest.pth", weights_only=True)["run_id"] == fork.name
    assert (tmp_path / "runs/log/tiny" / fork.name / "config.json").is_file()
    # --fork needs a checkpoint, and it is --fork or --overwrite.
    assert run_train(["-c", str(run12 / "tiny.json"), "--fork"] + CPU, tmp_path) == 2
    one_error_line(capsys, "--fork", "-r")
    assert _resume(run, "checkpoint-epoch1.pth", "--fork", "--overwrite") == 2
    one_error_line(capsys, "--fork", "--overwrite", "not both")


def test_overwrite_rolls_back_in_place_keeping_the_newer_checkpoints(run12, tmp_path, capsys):
    run = _copy_run(run12, tmp_path)
    before = _checkpoints(run)
    newer = {n for n in before if _iteration(run / n) > 6}
    assert {"latest.pth", "checkpoint-epoch2.pth"} <= newer
    assert _resume(run, "checkpoint-epoch1.pth", "--iters", "8", "--overwrite") == 0
    err = capsys.readouterr().err
    assert "latest.pth (iteration 12) is kept as latest.rolled-back-it12.pth" in err
    assert _iteration(run / "latest.pth") == 8
    for name in newer:  # every newer file is kept, byte for byte, under a clear name
        kept = run / name.replace(".pth", ".rolled-back-it12.pth")
        assert kept.read_bytes() == before[name], name
    assert (run / "checkpoint-epoch1.pth").read_bytes() == before["checkpoint-epoch1.pth"]
    assert not (run / "checkpoint-epoch2.pth").exists()
    # The rolled-back files do not count as the run's newest: the run continues from latest (8).
    assert _resume(run, "latest.pth", "--iters", "9") == 0
    assert _iteration(run / "latest.pth") == 9
    # A second roll-back to the same point never overwrites a kept file.
    assert _resume(run, "checkpoint-epoch1.pth", "--iters", "7", "--overwrite") == 0
    assert (run / "latest.rolled-back-it9.pth").is_file()
    assert (run / "latest.rolled-back-it12.pth").read_bytes() == before["latest.pth"]


def test_a_used_run_folder_recommends_its_newest_checkpoint(run12, tmp_path, capsys):
    """Not the alphabetically first file: here best.pth is older than latest.pth."""
    run = _copy_run(run12, tmp_path)
    shutil.copyfile(run / "checkpoint-epoch1.pth", run / "best.pth")
    assert run_train(["-c", str(run12 / "tiny.json"), "--iters", "1", "--save_dir", str(tmp_path / "runs"),
                      "--run_id", "k"] + CPU, tmp_path) == 2
    line = one_error_line(capsys, "already holds checkpoints", f"-r {run / 'latest.pth'}", "--overwrite")
    assert "best.pth" not in line


# ---------------------------------------------------------------------------------------- divergence
def _poison_after(monkeypatch, step: int):
    """After training step ``step`` (1-based), one generator weight becomes NaN."""
    original = IAFacesTrainer.train_step

    def train_step(self, batch):
        logs = original(self, batch)
        if self.iteration + 1 == step:
            with torch.no_grad():
                next(self.G.parameters()).fill_(float("nan"))
        return logs

    monkeypatch.setattr(IAFacesTrainer, "train_step", train_step)


def test_divergence_stops_training_and_keeps_the_last_finite_checkpoint(tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path / "tiny.json", tiny_config(trainer={"update_ckpt": 2}))
    _poison_after(monkeypatch, 5)
    run = tmp_path / "s/models/tiny/d"
    assert run_train(["-c", str(cfg), "--iters", "12", "--save_dir", "s", "--run_id", "d"] + CPU, tmp_path) == 2
    one_error_line(capsys, "training diverged at iteration 6 (", "is nan",
                   f"last finite checkpoint is {run}/latest.pth", "lower the learning rate")
    state = torch.load(run / "latest.pth", weights_only=True)
    assert state["iteration"] == 4 and first_non_finite(state) is None
    assert sorted(p.name for p in run.glob("*.pth")) == ["latest.pth"]


def test_a_checkpoint_is_never_written_with_non_finite_weights(tmp_path):
    tr = tiny_trainer(tmp_path)
    path = tr.save("latest.pth")
    before = path.read_bytes()
    with torch.no_grad():
        next(tr.E.parameters())[0] = float("inf")
    with pytest.raises(TrainingError, match=r"training diverged at iteration 0 \(encoder\.\S+ is not finite; "
                                            r"latest\.pth was not written\); the last finite checkpoint is "):
        tr.save("latest.pth")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.pth"]  # no temporary file left either
    path.unlink()
    assert "no checkpoint was written" in str(tr.diverged("loss_g is nan"))


def test_huge_learning_rate_is_one_line_and_the_checkpoint_stays_finite(tmp_path, capsys):
    cfg = write_config(tmp_path / "tiny.json", tiny_config())
    assert run_train(["-c", str(cfg), "--iters", "2", "--save_dir", "s", "--run_id", "a"] + CPU, tmp_path) == 0
    latest = tmp_path / "s/models/tiny/a/latest.pth"
    before = latest.read_bytes()
    for lr in (1e308, float("inf")):
        huge = write_config(tmp_path / "huge.json", tiny_config(optimizer_G={"lr": lr}, optimizer_D={"lr": lr}))
        assert run_train(["-c", str(huge), "--iters", "12", "--save_dir", "s", "--run_id", "b"] + CPU, tmp_path) == 2
        one_error_line(capsys, "optimizer_G.lr", "> 0 and <= 1")
        assert run_train(["-r", str(latest), "-c", str(huge), "--iters", "12", "--save_dir", "s"] + CPU, tmp_path) == 2
        one_error_line(capsys, "optimizer_G.lr")
    assert latest.read_bytes() == before
    assert first_non_finite(torch.load(latest, weights_only=True)) is None
    assert not (tmp_path / "s/models/tiny/b").exists()


@pytest.mark.parametrize("scheduler,words", [
    ({"gamma": 0.9, "foo": 1}, ["unknown key 'foo'", "lr_scheduler_G.args", "valid keys: gamma"]),
    ({"gamma": -5}, ["lr_scheduler_G.args.gamma", "> 0 and <= 1", "-5"]),
    ({"gamma": 0}, ["lr_scheduler_G.args.gamma", "> 0 and <= 1"]),
    ({"gamma": 1.5}, ["lr_scheduler_G.args.gamma", "> 0 and <= 1"]),
    ({"gamma": float("nan")}, ["lr_scheduler_G.args.gamma", "nan"]),
    ({}, ["lr_scheduler_G.args lacks gamma"]),
])
def test_scheduler_arguments_are_checked_with_the_config(tmp_path, capsys, scheduler, words):
    cfg = write_config(tmp_path / "c.json", tiny_config(lr_scheduler_G={"type": "ExponentialLR", "args": scheduler}))
    assert run_train(["-c", str(cfg), "--iters", "1", "--save_dir", "s"] + CPU, tmp_path) == 2
    one_error_line(capsys, *words)
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------- resume runs what the config says
def _adam_settings(path: Path, key: str = "optimizer_G") -> dict:
    return torch.load(path, weights_only=True)[key]["param_groups"][0]


def test_resume_with_another_learning_rate_runs_it_and_says_so(tmp_path, capsys):
    cfg = write_config(tmp_path / "tiny.json", tiny_config())
    assert run_train(["-c", str(cfg), "--iters", "2", "--save_dir", "s", "--run_id", "a"] + CPU, tmp_path) == 0
    latest = tmp_path / "s/models/tiny/a/latest.pth"
    assert _adam_settings(latest)["lr"] == 0.002
    capsys.readouterr()
    other = write_config(tmp_path / "other.json", tiny_config(optimizer_G={"lr": 0.001, "beta1": 0.5}))
    assert run_train(["-r", str(latest), "-c", str(other), "--iters", "4", "--save_dir", "s"] + CPU, tmp_path) == 0
    err = capsys.readouterr().err
    assert "notice: optimizer_G.lr 0.002 -> 0.001 (from the config)" in err
    assert "notice: optimizer_G.beta1 0 -> 0.5 (from the config)" in err
    assert "optimizer_D" not in err  # unchanged: no notice
    state = torch.load(latest, weights_only=True)
    assert state["iteration"] == 4
    assert state["optimizer_G"]["param_groups"][0]["lr"] == state["config"]["optimizer_G"]["lr"] == 0.001
    assert state["optimizer_G"]["param_groups"][0]["betas"][0] == 0.5
    assert json.loads((tmp_path / "s/log/tiny/a/config.json").read_text())["optimizer_G"]["lr"] == 0.001


def test_resume_applies_the_configs_scheduler_from_its_epoch(tmp_path, capsys):
    """With a scheduler the rate at epoch e is lr * gamma ** e, for the config's lr and gamma."""
    sched = {"type": "ExponentialLR", "args": {"gamma": 0.5}}
    cfg = write_config(tmp_path / "tiny.json", tiny_config(lr_scheduler_G=sched))
    assert run_train(["-c", str(cfg), "--iters", "6", "--save_dir", "s", "--run_id", "a"] + CPU, tmp_path) == 0
    latest = tmp_path / "s/models/tiny/a/latest.pth"
    assert math.isclose(_adam_settings(latest)["lr"], 0.002 * 0.5)  # one epoch done
    other = write_config(tmp_path / "other.json", tiny_config(
        optimizer_G={"lr": 0.004}, lr_scheduler_G={"type": "ExponentialLR", "args": {"gamma": 0.9}}))
    capsys.readouterr()
    assert run_train(["-r", str(latest), "-c", str(other), "--iters", "12", "--save_dir", "s"] + CPU, tmp_path) == 0
    err = capsys.readouterr().err
    assert "notice: optimizer_G.lr 0.002 -> 0.004 (from the config)" in err
    assert "notice: lr_scheduler_G.args.gamma 0.5 -> 0.9 (from the config)" in err
    state = torch.load(latest, weights_only=True)
    assert state["epoch"] == 2
    assert math.isclose(state["optimizer_G"]["param_groups"][0]["lr"], 0.004 * 0.9 ** 2)
    assert state["schedulers"]["G"]["gamma"] == 0.9 and state["schedulers"]["G"]["base_lrs"] == [0.004]


def test_an_unchanged_config_changes_nothing_on_resume(tmp_path):
    tr = tiny_trainer(tmp_path / "a", tiny_config(lr_scheduler_G={"type": "ExponentialLR", "args": {"gamma": 0.5}}))
    for _ in range(3):
        tr.on_epoch_end()
    state = tr.state_dict()
    groups = [dict(g) for g in tr.opt_G.param_groups]
    assert tr.apply_optimizer_config(3) == []
    assert [dict(g) for g in tr.opt_G.param_groups] == groups
    tr.load_state_dict({**state, "epoch": 3})
    assert tr.opt_G.param_groups[0]["lr"] == groups[0]["lr"]


def _rates(tr, batch, steps: int) -> list:
    out = []
    for _ in range(steps):
        tr.train_step(batch)
        out.append(tr.opt_G.param_groups[0]["lr"])
        tr.iteration += 1
    return out


def test_linear_decay_sets_each_steps_rate_from_the_iteration_and_resumes_without_notices(tmp_path, capsys):
    cfg = tiny_config(lr_scheduler_G={"type": "LinearDecay", "args": {"start": 0.5}}, trainer={"iters": 6})
    a = tiny_trainer(tmp_path / "a", cfg)
    assert a.total_iterations() == 6 and a.schedulers == {}
    batch = next(iter(a.epoch_batches(0, 0)))
    rates = _rates(a, batch, 6)
    assert rates == pytest.approx([0.002, 0.002, 0.002, 0.002, 0.002 * 2 / 3, 0.002 / 3])
    b = tiny_trainer(tmp_path / "b", cfg)
    assert _rates(b, batch, 3) == rates[:3]
    state = b.state_dict()
    c = tiny_trainer(tmp_path / "c", cfg)
    capsys.readouterr()
    c.load_state_dict({**state, "epoch": 0})  # the checkpoint's networks and optimizers, mid-epoch
    c.iteration = 3
    assert "notice" not in capsys.readouterr().err
    assert _rates(c, batch, 3) == pytest.approx(rates[3:])


@pytest.mark.parametrize("args,words", [
    ({"start": 1.5}, ["lr_scheduler_G.args.start", ">= 0 and <= 1", "1.5"]),
    ({}, ["lr_scheduler_G.args lacks start", '"start": 0.5']),
    ({"start": 0.5, "gamma": 0.9}, ["unknown key 'gamma'", "valid keys: start"]),
])
def test_linear_decay_arguments_are_checked_with_the_config(tmp_path, capsys, args, words):
    cfg = write_config(tmp_path / "c.json", tiny_config(lr_scheduler_G={"type": "LinearDecay", "args": args}))
    assert run_train(["-c", str(cfg), "--iters", "1", "--save_dir", "s"] + CPU, tmp_path) == 2
    one_error_line(capsys, *words)


# -------------------------------------------------------------------------------- bounded config values
@pytest.mark.parametrize("blocks,words", [
    ({"encoder": {"args": {"comp_dim": 1000000000}}}, ["encoder.comp_dim", "<= 4096"]),
    ({"encoder": {"args": {"content_channels": 100000}}}, ["encoder.content_channels", "<= 4096"]),
    ({"encoder": {"args": {"channel": 100000}}}, ["encoder.channel", "<= 4096"]),
    ({"generator": {"args": {"channel_max": 10 ** 9, "channel_base": 10 ** 12}}}, ["generator.channel_max", "<= 4096"]),
    ({"generator": {"args": {"channel_base": 1}}}, ["generator.channel_base", ">= 32"]),
    ({"discriminator": {"args": {"channel_max": 10 ** 9, "channel_base": 10 ** 12}}},
     ["discriminator.channel_max", "<= 4096"]),
    ({"discriminator": {"args": {"channel_base": 0}}}, ["discriminator.channel_base", ">= 32"]),
    ({"encoder": {"type": "BoxEncoder", "args": {**TINY_ENCODER, "crop_size": 8, "crop_channels": 10 ** 8}}},
     ["encoder.crop_channels", "<= 4096"]),
    ({"data_loader": {"mask_width": 1000000, "mask_p": 1}}, ["data_loader.mask_width", "<= 4096"]),
    ({"data_loader": {"mask_width": 300, "mask_p": 1}}, ["data_loader.mask_width", "<= 256", "canvas"]),
    ({"data_loader": {"mask_size": 100000, "mask_p": 1}}, ["data_loader.mask_size", "<= 4096"]),
    ({"data_loader": {"batch_size": 100000}}, ["data_loader.batch_size", "<= 4096"]),
    ({"data_set": {"args": {"num_train": 10 ** 9}}}, ["data_set.args.num_train", "<= 1000000"]),
    ({"data_set": {"args": {"num_val": 10 ** 9}}}, ["data_set.args.num_val", "<= 1000000"]),
])
def test_config_values_are_bounded_before_allocation(tmp_path, capsys, blocks, words):
    cfg = write_config(tmp_path / "c.json", tiny_config(**blocks))
    assert run_train(["-c", str(cfg), "--iters", "1", "--save_dir", "s"] + CPU, tmp_path) == 2
    one_error_line(capsys, *words)
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------------------------- smaller
def test_a_huge_mistyped_value_is_shown_short(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.json", tiny_config(data_loader={"batch_size": list(range(5_000_000))}))
    assert run_train(["-c", str(cfg), "--iters", "1", "--save_dir", "s"] + CPU, tmp_path) == 2
    line = one_error_line(capsys, "data_loader.batch_size must be int", "[0, 1, 2, 3, 4, 5, ...]")
    assert len(line) < 200


@pytest.mark.parametrize("case", ["missing data", "smaller than one batch"])
def test_a_failed_start_leaves_no_run_folder(tmp_path, capsys, case):
    if case == "missing data":
        blocks = {"data_set": {"type": "ImageFolderDataset", "args": {"image_dir": str(tmp_path / "none"),
                                                                      "image_size": 32}}}
        words = ["image folder not found"]
    else:
        blocks = {"data_set": {"args": {"num_train": 2}}}
        words = ["smaller than one batch"]
    cfg = write_config(tmp_path / "c.json", tiny_config(**blocks))
    # A save dir of its own: nothing of it stays.
    assert run_train(["-c", str(cfg), "--iters", "1", "--save_dir", "fresh"] + CPU, tmp_path) == 2
    one_error_line(capsys, *words)
    assert not (tmp_path / "fresh").exists()
    # A save dir with another run: that run stays, the failed one leaves nothing.
    good = write_config(tmp_path / "good.json", tiny_config())
    assert run_train(["-c", str(good), "--iters", "1", "--save_dir", "used", "--run_id", "ok"] + CPU, tmp_path) == 0
    before = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "used").rglob("*"))
    for extra in ([], ["--run_id", "x"]):
        assert run_train(["-c", str(cfg), "--iters", "1", "--save_dir", "used"] + extra + CPU, tmp_path) == 2
        assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "used").rglob("*")) == before


def test_description_is_bounded(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.json", {**tiny_config(), "description": "x" * 2001})
    assert run_train(["-c", str(cfg), "--iters", "1", "--save_dir", "s"] + CPU, tmp_path) == 2
    line = one_error_line(capsys, "description", "2001", "at most 2000")
    assert len(line) < 200
    ok = write_config(tmp_path / "ok.json", {**tiny_config(), "description": "x" * 2000})
    from trainer.config import load_config
    assert len(load_config(ok).description) == 2000


@pytest.mark.parametrize("text,key", [
    (json.dumps(tiny_config())[:-1] + ', "seed": 7}', "seed"),
    (json.dumps(tiny_config()).replace('"epochs": 10', '"epochs": 10, "epochs": 3'), "epochs"),
])
def test_duplicate_json_keys_are_one_line_naming_the_key(tmp_path, capsys, text, key):
    (tmp_path / "c.json").write_text(text)
    assert run_train(["-c", str(tmp_path / "c.json"), "--iters", "1", "--save_dir", "s"] + CPU, tmp_path) == 2
    one_error_line(capsys, f"'{key}' is given twice")
