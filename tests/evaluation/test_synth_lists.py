"""The release's evaluation lists for a SynthFaces export (evaluation/synth_lists.py)."""
from pathlib import Path

import pytest

from data_loader.attributes import read_attribute_file
from data_loader.synthfaces.export import export
from editing import PRESETS
from evaluation.synth_lists import derangement, main
from tests.helpers import one_error_line


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    export(str(out), 40, 32, seed=0, progress=False, start=12500)
    return out


def _ids(path: Path) -> list[str]:
    return path.read_text().split()


def test_export_start_renders_the_held_out_ids(exported):
    assert sorted(int(p.stem) for p in (exported / "images").glob("*.jpg")) == list(range(12500, 12540))
    assert _ids(exported / "test.txt") == [str(i) for i in range(12536, 12540)]
    assert _ids(exported / "train.txt")[0] == "12500"


def test_lists_follow_the_ground_truth_and_the_release_layout(exported, tmp_path):
    assert main([str(exported), "--out", str(tmp_path)]) == 0
    test = _ids(exported / "test.txt")
    assert _ids(tmp_path / "celebahq-lists/test.txt") == [f"{i}.jpg" for i in test]
    shuffled = _ids(tmp_path / "celebahq-lists/shuffled_test.txt")
    assert sorted(shuffled) == sorted(f"{i}.jpg" for i in test)
    assert all(a != b for a, b in zip(shuffled, _ids(tmp_path / "celebahq-lists/test.txt")))
    names, table = read_attribute_file(exported / "CelebAMask-HQ-attribute-anno.txt")
    for folder, split in (("attr_lists", test), ("boundary_lists", _ids(exported / "train.txt"))):
        for preset in PRESETS.values():
            col = names.index(preset.attribute)
            pos, neg = _ids(tmp_path / folder / f"{preset.positive_list}.txt"), \
                _ids(tmp_path / folder / f"{preset.inputs}.txt")
            assert sorted(pos + neg, key=int) == split
            assert all(table[f"{i}.jpg"][col] == preset.sign for i in pos)
            assert all(table[f"{i}.jpg"][col] == -preset.sign for i in neg)
    assert (tmp_path / "metrics/not_detecetd/iafaces.txt").read_text() == ""


def test_beard_lists_name_faces_with_a_beard_as_positive(exported, tmp_path):
    """No_Beard's polarity is reversed: ``beard.txt`` holds No_Beard == -1."""
    main([str(exported), "--out", str(tmp_path)])
    names, table = read_attribute_file(exported / "CelebAMask-HQ-attribute-anno.txt")
    col = names.index("No_Beard")
    for i in _ids(tmp_path / "boundary_lists/beard.txt"):
        assert table[f"{i}.jpg"][col] == -1


def test_derangement_never_keeps_a_face_in_place():
    ids = [str(k) for k in range(50)]
    for seed in range(20):
        d = derangement(ids, seed)
        assert sorted(d) == sorted(ids) and all(a != b for a, b in zip(d, ids))


def test_not_an_export_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "l")]) == 2
    one_error_line(capsys, "not a SynthFaces export", "data_loader.synthfaces")
