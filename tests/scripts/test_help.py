"""Every command's ``--help`` prints its usage and exits 0 (a ``%`` in a help text once made
``python -m evaluation.synth_benchmark --help`` end in a traceback)."""
import importlib

import pytest

COMMANDS = ["train", "app", "attr_manipulation", "component_transfer", "reconstruction",
            "evaluation.synth_benchmark.cli", "evaluation.compare", "evaluation.curves", "evaluation.heatmap",
            "evaluation.speed", "evaluation.quick_probe", "evaluation.bench_table", "evaluation.attr_classifier",
            "editing.align.cli"]


@pytest.mark.parametrize("module", COMMANDS)
def test_help_prints_usage_and_exits_0(module, capsys):
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    out, err = capsys.readouterr()
    assert stop.value.code == 0, err
    assert out.startswith("usage:") and len(out.splitlines()) > 3 and "Traceback" not in out + err
