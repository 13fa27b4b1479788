"""The names of one run's --save_aligned files, decided up front (editing.cli.NamePlan, issue 24):
a family is ``<base><suffix>`` with the ``_face<k>`` tags of --all_faces; no family holds a fixed
name or meets another, whatever the order, the case or the number of inputs."""
import time
from pathlib import Path

from editing.cli import ALIGNED, ALIGNED_EDIT, NamePlan, plan_aligned_names


def test_families_and_fixed_names():
    plan = NamePlan(["a_aligned.png", "x_face2_aligned.png", "B.png"])
    assert not plan.free("a", ALIGNED) and not plan.free("x", ALIGNED) and not plan.free("x_face2", ALIGNED)
    assert plan.free("x_face", ALIGNED) and plan.free("b", ALIGNED)
    assert plan.claim("k1", ALIGNED, ["two"]) == "two"
    assert not plan.free("two_face1", ALIGNED) and not plan.free("TWO", ALIGNED)
    assert plan.free("two_face1_face2", ALIGNED) and plan.free("two_face1", ALIGNED_EDIT)
    assert plan.claim("k2", ALIGNED, ["t_face1", "t2"]) == "t_face1" and not plan.free("t", ALIGNED)
    assert plan.claim("k3", ALIGNED, ["two_face7", "two-2"], "c.png") == "two-2"
    assert plan.claim("k3", ALIGNED, ["other"]) == "two-2"  # one key, one name
    assert plan.notice("why") == "notice: why: c.png -> two-2_aligned.png"


def test_plan_of_a_run(tmp_path):
    photos = [tmp_path / "t1" / "a.jpg", tmp_path / "t2" / "a.jpg", tmp_path / "r" / "a.jpg", tmp_path / "t1" / "a.jpg"]
    plan = plan_aligned_names(photos, ["a.png", "a_face1.png"])
    bases = [plan.given[(("file", str(p.resolve())), ALIGNED)] for p in photos]
    assert bases == ["a", "t2_a", "r_a", "a"]  # the same file twice shares its name
    assert plan.given[(("output", "a_face1.png"), ALIGNED_EDIT)] == "a_face1-2"
    # Thousands of inputs are planned in well under a second (set look-ups, no pairwise checks).
    t = time.perf_counter()
    plan_aligned_names([Path(f"d/{i}.png") for i in range(5000)], [f"{i}.png" for i in range(5000)])
    assert time.perf_counter() - t < 5
