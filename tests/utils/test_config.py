"""Typed config blocks and config inheritance (utils/config.py): ``merge_config`` lays a config over
its parent, ``resolve_base`` follows the ``"base"`` chain of files."""
import json

import pytest

from utils.config import check_range, merge_config, resolve_base
from utils.errors import ConfigError


def test_merge_overrides_merges_objects_removes_nulls_and_replaces_other_types():
    parent = {"seed": 1, "exp_id": "p", "editing": {"boundary_recipe": "mean"},
              "encoder": {"type": "BoxEncoder", "args": {"size": 64, "crop_size": 16, "ring_fit": "plane"}},
              "loss": {"type": "CounterfactualLoss", "args": {"g_loss_weight": 0, "swap_weight": 1}},
              "swap_components": ["l_eye", "r_eye"]}
    child = {"exp_id": "c",  # a value replaces
             "encoder": {"args": {"crop_size": 8, "ring_fit": None}},  # objects merge; null removes
             "loss": {"type": "IAFacesLoss", "args": {"g_loss_weight": 0.1}},  # another type: replaced whole
             "swap_components": ["eyes"],  # lists replace
             "editing": None}  # a whole block removed
    merged = merge_config(parent, child)
    assert merged == {"seed": 1, "exp_id": "c",
                      "encoder": {"type": "BoxEncoder", "args": {"size": 64, "crop_size": 8}},
                      "loss": {"type": "IAFacesLoss", "args": {"g_loss_weight": 0.1}},
                      "swap_components": ["eyes"]}
    # The same type, said again, merges as any object does.
    same = merge_config(parent, {"loss": {"type": "CounterfactualLoss", "args": {"swap_weight": 2}}})
    assert same["loss"] == {"type": "CounterfactualLoss", "args": {"g_loss_weight": 0, "swap_weight": 2}}
    # The parent is left as it was.
    assert parent["encoder"]["args"] == {"size": 64, "crop_size": 16, "ring_fit": "plane"} and "editing" in parent


def _files(tmp_path, **configs):
    for name, data in configs.items():
        path = tmp_path / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


def _read(path):
    return json.loads(path.read_text())


def test_base_chain_resolves_relative_to_each_file(tmp_path):
    (tmp_path / "study").mkdir()
    _files(tmp_path, root={"a": 1, "block": {"x": 1, "y": 2}},
           **{"study/mid": {"base": "../root.json", "b": 2, "block": {"y": None, "z": 3}}})
    child = {"base": "mid.json", "a": 10}
    assert resolve_base(child, tmp_path / "study", _read) == {"a": 10, "b": 2, "block": {"x": 1, "z": 3}}
    assert resolve_base({"a": 1}, tmp_path, _read) == {"a": 1}  # no base: as it is


@pytest.mark.parametrize("base,words", [
    ("missing.json", ["parent config not found", "missing.json"]),
    ("", ["base must be the path of a parent config file"]),
    (7, ["base must be the path of a parent config file", "7"]),
])
def test_bad_base_is_refused(tmp_path, base, words):
    with pytest.raises(ConfigError) as e:
        resolve_base({"base": base, "a": 1}, tmp_path, _read)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_base_cycle_is_refused(tmp_path):
    _files(tmp_path, a={"base": "b.json", "x": 1}, b={"base": "c.json"}, c={"base": "a.json"})
    with pytest.raises(ConfigError, match=r"is its own ancestor .*a\.json -> .*b\.json -> .*c\.json -> .*a\.json"):
        resolve_base(_read(tmp_path / "a.json"), tmp_path, _read, ((tmp_path / "a.json").resolve(),))
    _files(tmp_path, self={"base": "self.json"})
    with pytest.raises(ConfigError, match="its own ancestor"):
        resolve_base(_read(tmp_path / "self.json"), tmp_path, _read, ((tmp_path / "self.json").resolve(),))


def test_base_chain_length_is_bounded(tmp_path):
    from utils.config import MAX_BASE_DEPTH

    n = MAX_BASE_DEPTH + 2
    _files(tmp_path, **{f"c{i}": {"base": f"c{i + 1}.json"} for i in range(n)}, **{f"c{n}": {"a": 1}})
    with pytest.raises(ConfigError, match=f"more than {MAX_BASE_DEPTH} configs"):
        resolve_base(_read(tmp_path / "c0.json"), tmp_path, _read)
    _files(tmp_path, **{f"d{i}": {"base": f"d{i + 1}.json"} for i in range(3)}, d3={"a": 1})
    assert resolve_base(_read(tmp_path / "d0.json"), tmp_path, _read) == {"a": 1}


def test_check_range_names_the_key_and_range():
    check_range("x", 3, 0, 5)
    with pytest.raises(ConfigError, match=r"^x must be an integer >= 0 and <= 5, got 7$"):
        check_range("x", 7, 0, 5)
    with pytest.raises(ConfigError, match=r"^lr must be a number > 0, got nan$"):
        check_range("lr", float("nan"), 0, lo_open=True)
    check_range("m", None, 0, optional=True)
    # Still importable where it used to live.
    from trainer.config import check_range as moved
    assert moved is check_range


def test_values_in_error_messages_are_cut_to_a_readable_length():
    """A mistyped value can be megabytes long (issue 24): messages show at most 80 characters of it."""
    from utils.config import build, check_value, reject_unknown, shown

    huge = list(range(5_000_000))
    for call in (lambda: check_value("int", huge, "x"), lambda: check_range("x", "y" * 10 ** 6, 0, 5),
                 lambda: check_range("x", 10 ** 4000, 0, 5), lambda: reject_unknown(["k" * 10 ** 6], ["a"], "b")):
        with pytest.raises(ConfigError) as e:
            call()
        assert len(str(e.value)) < 160 and "..." in str(e.value), str(e.value)[:300]
    assert shown(huge) == "[0, 1, 2, 3, 4, 5, ...]"
    assert len(shown("z" * 10 ** 6)) <= 80 and shown("abc") == "'abc'"
    import dataclasses

    @dataclasses.dataclass
    class Block:
        n: int = 1

    with pytest.raises(ConfigError, match=r"^b\.n must be int, got \[0, 1, 2, 3, 4, 5, \.\.\.\] \(expected type "
                                          r"int\)$"):
        build(Block, {"n": huge}, "b")


def test_check_range_says_integer_only_for_whole_ranges():
    with pytest.raises(ConfigError, match=r"^b must be a number >= 0 and <= 0.999, got 2$"):
        check_range("b", 2, 0, 0.999)
    with pytest.raises(ConfigError, match=r"^w must be an integer >= 1 and <= 4096, got 5000$"):
        check_range("w", 5000, 1, 4096)
