"""The speed report (evaluation/speed.py): FLOPs, seconds, images/s and MFU of training steps, the
forward pass and the editing latency; the datasheet peaks a GPU is measured against; the quick
preset's rows on the CPU."""
import json

import pytest
import torch

from tests.helpers import tiny_config, write_config


def _tiny_configs(tmp_path):
    """A tiny config with the counterfactual loss (swap pairs) and one with the release's loss."""
    cf = tiny_config(trainer={"amp": "bf16", "channels_last": True})
    cf["loss"] = {"type": "CounterfactualLoss", "args": {"p_loss_weight": 0, "d_reg_every": 2, "r1": 1,
                                                         "g_loss_weight": 0.1, "gan_start": 0, "swap_weight": 1,
                                                         "swap_pairs": 2}}
    return write_config(tmp_path / "cf.json", cf), write_config(tmp_path / "release.json", tiny_config())


def test_quick_preset_prints_every_row_on_the_cpu(tmp_path, monkeypatch, capsys):
    """``--device cpu --quick --all`` (the official configs and editing archs swapped for tiny
    ones): peaks, a row per training config, the forward pass and both editing latencies of each
    arch; MFU against the measured peak; no bf16 rows where bf16 is not native; JSON alike."""
    from evaluation import speed

    cf, release = _tiny_configs(tmp_path)
    monkeypatch.setattr(speed, "OFFICIAL_256", (release, cf))
    monkeypatch.setattr(speed, "EDIT_ARCHS", ("iafaces", "iafaces_cam"))
    monkeypatch.setattr(speed, "native_bf16", lambda device: False)
    out = tmp_path / "speed.json"
    assert speed.main(["--device", "cpu", "--quick", "--all", "--config", str(cf), "--arch", "iafaces",
                       "--threads", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| part")]
    assert [r.split(" | ")[0] for r in rows] == ["| train", "| train256", "| train256", "| forward"] + ["| edit"] * 4
    assert "cf.json step (of which" in rows[0] and "rendering the swap pairs on the host" in rows[0]
    assert "release.json step | fp32 | 1 |" in rows[1] and "rendering" not in rows[1]
    assert all("of measured fp32 peak" in r for r in rows[:4])
    assert "iafaces decode per slider move" in rows[4] and "iafaces_cam encode a face" in rows[7]
    assert "peak fp32: conv" in text and "no bf16 rows" in text and "bf16" not in "".join(rows)
    res = json.loads(out.read_text())
    peak = res["peaks"]["fp32"]["peak_gflops"]
    for row in res["train"] + res["train256"] + res["forward"]:
        assert row["gflop"] > 0 and row["mfu"] == pytest.approx(row["gflops"] / peak)
    train = res["train"][0]
    assert train["batch"] == 1 and train["images_per_s"] == pytest.approx(1 / train["seconds"])
    assert train["swap_render_seconds"] > 0 and res["train256"][0]["swap_render_seconds"] is None
    assert all(row["decode_ms"] > 0 and row["encode_ms"] > 0 for row in res["edit"])


def test_the_gpu_path_keeps_every_tensor_on_the_device(tmp_path, monkeypatch, capsys):
    """``--device cuda --quick --all`` on the virtual device of tests/trainer/test_device_placement.py
    (a tensor left on the CPU stops it): every row is measured, no convolution on the CPU."""
    from evaluation import speed
    from tests.trainer.test_device_placement import VIRTUAL, VirtualDevice

    cf, release = _tiny_configs(tmp_path)
    monkeypatch.setattr(speed, "OFFICIAL_256", (release,))
    monkeypatch.setattr(speed, "EDIT_ARCHS", ("iafaces",))
    monkeypatch.setattr(speed, "resolve_device", lambda spec: VIRTUAL)
    with VirtualDevice() as mode:
        assert speed.main(["--device", "cuda", "--quick", "--all", "--config", str(cf), "--arch", "iafaces"]) == 0
    assert not mode.heavy_on_cpu() and mode.ran_on_device("convolution_backward") > 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith(("| train", "| forward", "| edit"))]
    assert text.startswith(f"device {VIRTUAL}") and len(rows) == 5  # train, train256, forward, 2 x edit


def test_bf16_rows_only_where_native(tmp_path, monkeypatch):
    """The training rows follow the device: float32 always, bf16 + channels-last where native, and
    a row reports the precision the trainer ran in."""
    from evaluation import speed

    cf, _ = _tiny_configs(tmp_path)
    monkeypatch.setattr(speed, "native_bf16", lambda device: False)
    assert speed.precisions(torch.device("cpu")) == [False]
    assert [r["precision"] for r in speed.training_rows(cf, torch.device("cpu"), 1, 1, True)] == ["fp32"]
    monkeypatch.setattr(speed, "native_bf16", lambda device: True)
    assert speed.precisions(torch.device("cpu")) == [False, True]
    # the trainer takes bf16 only where utils.device.native_bf16 says so (not patched): fp32 here
    row = speed.measure_training(cf, torch.device("cpu"), 1, {"amp": "bf16", "channels_last": True}, 1, True)
    from utils.device import native_bf16
    assert row["precision"] == ("bf16" if native_bf16(torch.device("cpu")) else "fp32") and row["channels_last"]


@pytest.mark.parametrize("name,bf16", [("NVIDIA H200", 989.4), ("NVIDIA H200 NVL", 835.5),
                                       ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.5),
                                       ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A10", 125.0),
                                       ("NVIDIA A10G", None), ("NVIDIA L40S", 362.1), ("Tesla T4", None)])
def test_datasheet_peaks_and_mfu(name, bf16, monkeypatch):
    """A GPU is measured against its datasheet dense peak: bf16 rows against bf16, float32 rows
    against TF32 while cuDNN computes convolutions in TF32 (else fp32); an unknown GPU against the
    measured peak."""
    from evaluation import speed

    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    sheet = speed.datasheet_peaks(gpu)
    assert speed.datasheet_peaks(torch.device("cpu")) is None
    if bf16 is None:
        assert sheet is None
        measured = {"fp32": {"peak_gflops": 8000.0}}
        assert speed.peak_for("fp32", {"datasheet": None, "peaks": measured}) == (8000.0, "measured fp32 peak")
        assert speed.peak_for("bf16", {"datasheet": None}) is None
        return
    assert sheet["bf16"] == bf16 and sheet["tf32"] == pytest.approx(bf16 / 2, rel=0.02) and sheet["gpu"] == name
    res = {"device": "cuda:0", "threads": 1, "gpu": name, "datasheet": sheet, "peaks": None}
    assert speed.peak_for("bf16", res) == (bf16 * 1e3, f"{name} datasheet bf16 dense")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert speed.peak_for("fp32", res)[0] == sheet["tf32"] * 1e3
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert speed.peak_for("fp32", res)[0] == sheet["fp32"] * 1e3
    row = {"config": "x/synthfaces.json", "batch": 16, "precision": "bf16", "channels_last": True, "seconds": 0.1,
           "images_per_s": 160.0, "gflop": bf16 * 1e3 * 0.1 / 4, "gflops": bf16 * 1e3 / 4}
    text = speed.report({**res, "train": [row]})
    assert f"25.0% of {name} datasheet bf16 dense" in text and "| 160.0 |" in text


def test_unknown_parts_are_one_line(capsys):
    from evaluation import speed

    assert speed.main(["--parts", "peaks,sprint"]) == 2
    assert "unknown part(s) sprint" in capsys.readouterr().err
    assert speed.main(["--all", "--parts", "peaks"]) == 2
    assert "--all or --parts" in capsys.readouterr().err


@pytest.mark.slow
def test_the_real_quick_preset_runs_on_the_cpu(capsys, monkeypatch):
    """``python -m evaluation.speed --device cpu --quick`` with the real networks: a training step of
    the default config and the 256-px editing latency of the CAM architecture, one row each (peaks,
    the forward part and every other row run with stand-ins above). The official 256-px training
    step is left to ``--quick --all`` by hand and to the GPU script: at batch 1 it alone took a
    minute of a 2-core AVX2 CPU's test time."""
    from evaluation import speed

    monkeypatch.setattr(speed, "EDIT_ARCHS", speed.EDIT_ARCHS[1:])
    assert speed.main(["--device", "cpu", "--quick", "--parts", "train,edit"]) == 0
    text = capsys.readouterr().out
    for row in ("| train | synthfaces.json step", "| edit | iafaces_cam_256 decode per slider move (256 px)"):
        assert row in text, row
    assert "iafaces_256 decode" not in text and "train256" not in text
