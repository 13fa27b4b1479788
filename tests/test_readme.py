"""The README's Python snippet runs as written (against a tiny checkpoint at the path it names), so
the documented API cannot drift."""
import re
from pathlib import Path

import torch
from PIL import Image

from data_loader.synthfaces import render, sample_factors
from model import build_model_config, build_networks
from model.checkpoint import save_model_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_python_snippet_runs(tmp_path, monkeypatch):
    import editing.boundaries

    blocks = readme_python_blocks()
    assert len(blocks) == 1
    cfg = build_model_config("iafaces", encoder={"size": 32, "channel": 8, "channel_max": 32,
                                                 "content_channels": 32, "comp_dim": 16},
                             generator={"channel_base": 512, "channel_max": 32})
    torch.manual_seed(0)
    E, G, _ = build_networks(cfg, discriminator=False)
    ckpt = tmp_path / "saved/models/iafaces-synthfaces-64/default/best.pth"
    save_model_checkpoint(ckpt, E, G, cfg, config={"data_set": {"type": "SynthFaces", "args": {"size": 32}}})
    for name, i in (("face.png", 29000), ("ref.png", 29001)):
        Image.fromarray(render(sample_factors(0, i), 48)).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(editing.boundaries, "DEFAULT_SYNTH_FACES", 300)  # fewer label faces: a quick fit
    scope: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    assert scope["opened"].shape == (1, 3, 32, 32) and scope["swapped"].shape == (1, 3, 32, 32)
    assert (ckpt.parent / "boundaries" / "best" / "Mouth_Slightly_Open.pt").is_file()
