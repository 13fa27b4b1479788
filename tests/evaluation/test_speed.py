"""The speed report (evaluation/speed.py): FLOPs and seconds of a training step and a forward
pass, shares of the measured peaks."""
import pytest
import torch

from tests.helpers import tiny_config, write_config


@pytest.mark.slow
def test_speed_report_counts_flops_and_shares(tmp_path, capsys):
    from evaluation import speed

    torch.set_num_threads(1)
    cfg = tiny_config(trainer={"amp": "bf16", "channels_last": True})
    cfg["loss"] = {"type": "CounterfactualLoss", "args": {"p_loss_weight": 0, "d_reg_every": 2, "r1": 1,
                                                          "g_loss_weight": 0.1, "gan_start": 0}}
    cfg_path = write_config(tmp_path / "tiny.json", cfg)
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
