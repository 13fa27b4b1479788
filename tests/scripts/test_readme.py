"""The README's Python snippet runs as written (against a tiny checkpoint at the path it names), so
the documented API cannot drift."""
import re

from PIL import Image

from data_loader.synthfaces import render, sample_factors
from tests.helpers import ROOT, SIZE, save_tiny_checkpoint


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_python_snippet_runs(tmp_path, monkeypatch):
    import editing.boundaries

    blocks = readme_python_blocks()
    assert len(blocks) == 1
    ckpt = save_tiny_checkpoint(tmp_path / "saved/models/iafaces-synthfaces-64/default/best.pth",
                                config={"data_set": {"type": "SynthFaces", "args": {"size": SIZE}}})
    for name, i in (("face.png", 29000), ("ref.png", 29001)):
        Image.fromarray(render(sample_factors(0, i), 48)).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(editing.boundaries, "DEFAULT_SYNTH_FACES", 300)  # fewer label faces: a quick fit
    scope: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    assert scope["opened"].shape == (1, 3, 32, 32) and scope["swapped"].shape == (1, 3, 32, 32)
    assert (ckpt.parent / "boundaries" / "best" / "Mouth_Slightly_Open.pt").is_file()
