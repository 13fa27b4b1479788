"""train.py's command line: runs write only under their save folder, a used run id or a locked run
is refused, stale temporaries are cleared, a bad save folder or a non-training checkpoint is one
``error:`` line (hostile inputs, issue 15)."""
import shutil

import pytest
import torch

from tests.helpers import one_error_line, run_train, save_tiny_checkpoint, tiny_config, write_config


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A one-iteration tiny training run ``runs/models/tiny/a`` and its config ``tiny.json``."""
    root = tmp_path_factory.mktemp("train_cli")
    cfg = write_config(root / "tiny.json", tiny_config())
    assert run_train(["-c", str(cfg), "--iters", "1", "--device", "cpu", "--save_dir", str(root / "runs"),
                      "--run_id", "a"], root) == 0
    return {"root": root, "cfg": cfg, "runs": root / "runs", "latest": root / "runs/models/tiny/a/latest.pth"}


def test_resume_ignores_folders_named_in_the_checkpoint(work, tmp_path, capsys):
    before = work["latest"].read_bytes()
    payload = torch.load(work["latest"], weights_only=True)
    payload.pop("run_id", None)
    payload.update(run_dir=str(tmp_path / "victim/models"), log_dir=str(tmp_path / "victim/log"))
    torch.save(payload, tmp_path / "copy.pth")
    save = tmp_path / "save"
    assert run_train(["-r", str(tmp_path / "copy.pth"), "--iters", "2", "--device", "cpu", "--save_dir", str(save)],
                     tmp_path) == 0
    assert not (tmp_path / "victim").exists()
    (run,) = (save / "models/tiny").iterdir()  # a copy gets its own run folder
    assert run.name != "models" and torch.load(run / "latest.pth", weights_only=True)["iteration"] == 2
    assert (save / "log/tiny" / run.name / "config.json").is_file()
    assert work["latest"].read_bytes() == before
    # A stored run id or exp id that is not a plain name is refused.
    payload["run_id"] = "../../escape"
    torch.save(payload, tmp_path / "bad_id.pth")
    assert run_train(["-r", str(tmp_path / "bad_id.pth"), "--iters", "2", "--device", "cpu"], tmp_path) == 2
    one_error_line(capsys, "run id")
    assert run_train(["-c", str(write_config(tmp_path / "c.json", tiny_config(exp_id="../../.."))), "--iters", "1"],
                     tmp_path) == 2
    one_error_line(capsys, "exp_id")

def test_used_run_id_is_refused_and_a_training_run_is_locked(work, tmp_path, capsys):
    import train

    from trainer.config import load_config

    before = work["latest"].read_bytes()
    args = ["-c", str(work["cfg"]), "--iters", "1", "--device", "cpu", "--save_dir"]
    assert run_train(args + [str(work["runs"]), "--run_id", "a"], work["root"]) == 2
    one_error_line(capsys, "already holds checkpoints", "--overwrite")
    assert work["latest"].read_bytes() == before
    with train.run_lock(tmp_path / "models/tiny/busy"):
        assert run_train(args + [str(tmp_path), "--run_id", "busy"], work["root"]) == 2
    one_error_line(capsys, "another process is training")
    # Default run ids of runs started in the same second differ (each reserves its folder).
    ns = type("Args", (), {"run_id": None, "resume": None})()
    cfg = load_config(work["cfg"])
    cfg.trainer.save_dir = str(tmp_path)
    ids = {train.plan_run(ns, cfg, None, "")[0] for _ in range(3)}
    assert len(ids) == 3

def test_resume_in_place_removes_stale_temporary_files(work, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(work["runs"], runs)
    stale = runs / "models/tiny/a/.latest.pth.k3j_x9aa.tmp"
    stale.write_bytes(b"partial checkpoint")
    assert run_train(["-r", str(runs / "models/tiny/a/latest.pth"), "--iters", "2", "--device", "cpu",
                      "--save_dir", str(runs)], tmp_path) == 0
    assert not stale.exists()
    assert sorted(p.name for p in (runs / "models/tiny").iterdir()) == ["a"]  # continued in place
    assert torch.load(runs / "models/tiny/a/latest.pth", weights_only=True)["iteration"] == 2

def test_save_dir_that_is_a_file_is_one_line(work, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert run_train(["-c", str(work["cfg"]), "--iters", "1", "--device", "cpu", "--save_dir", str(tmp_path / "f")],
                     tmp_path) == 2
    one_error_line(capsys, "is a file")

def test_resume_of_non_training_checkpoint_is_a_user_error(tmp_path, capsys):
    save_tiny_checkpoint(tmp_path / "export.pth", config={})
    assert run_train(["-r", str(tmp_path / "export.pth")], tmp_path) == 2
    assert "no training state" in capsys.readouterr().err
    assert run_train(["-c", str(tmp_path / "missing.json")], tmp_path) == 2
