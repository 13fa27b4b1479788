"""The benchmark's faces and its edit makers: the SynthFaces setup of a checkpoint, its held-out
face ids, and the objects that make the edits being scored (the model under test, or a reference
that calibrates the benchmark)."""
from __future__ import annotations

import sys
from typing import Callable

from torch import Tensor

from data_loader.synthfaces.dataset import DEFAULT_SPLITS, split_ranges
from editing import Editor
from utils.errors import UserError

TRANSFER_COMPONENTS = ("l_eye", "r_eye", "eyes", "nose", "mouth")
SINGLE_EYE = (("Left_Eye_Closed", "l_eye", "Right_Eye_Closed"), ("Right_Eye_Closed", "r_eye", "Left_Eye_Closed"))
REFERENCES = ("oracle", "no_edit")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


# ----------------------------------------------------------------------------------------- setup
def synthfaces_setup(config: dict, log: Callable[[str], None] = _log) -> dict:
    """SynthFaces data set seed and split sizes of a checkpoint's training config (defaults with a
    notice when the checkpoint was not trained on SynthFaces)."""
    ds = config.get("data_set") if isinstance(config, dict) else None
    if isinstance(ds, dict) and ds.get("type") == "SynthFaces":
        args = dict(ds.get("args") or {})
        splits = {k: int(args.get(k, DEFAULT_SPLITS[k])) for k in DEFAULT_SPLITS}
        return {"seed": int(args.get("seed", 0)), "splits": splits, "trained_on_synthfaces": True}
    log("notice: this checkpoint was not trained on SynthFaces; using SynthFaces seed 0 and the default splits")
    return {"seed": 0, "splits": dict(DEFAULT_SPLITS), "trained_on_synthfaces": False}


def held_out_ids(setup: dict, num: int) -> list[int]:
    """The first ``num`` face ids of the test split (UserError when it is too small)."""
    test = split_ranges(**setup["splits"])["test"]
    if num < 2:
        raise UserError("--num must be at least 2")
    if len(test) < num:
        raise UserError(f"the SynthFaces test split of this checkpoint has {len(test)} faces; --num {num} is too many")
    return list(test[:num])


# ------------------------------------------------------------------------------------- edit makers
class ModelEdits:
    """The benchmark's subject: edits made by an IA-FaceS model through an :class:`Editor`.
    ``ground_truth`` arguments exist for the reference makers and are ignored here."""

    def __init__(self, editor: Editor):
        self.ed = editor

    def reconstruct(self, x: Tensor) -> Tensor:
        self.content, self.components = self.ed.encode(x)
        return self.ed.decode(self.content, self.components)

    def render(self, x: Tensor) -> Tensor:
        """The model's own rendering of ``x`` (encode, decode), leaving the edited faces' state alone."""
        return self.ed.decode(*self.ed.encode(x))

    def transfer(self, ref: list[int], comp: str, ground_truth: Tensor) -> Tensor:
        return self.ed.decode(self.content, Editor.transfer(self.components, self.components[ref], comp))

    def move(self, sel: list[int], directions: Tensor, strength: float, comps: str, ground_truth: Tensor) -> Tensor:
        """Move faces ``sel`` by ``strength * directions[i]`` on components ``comps`` (directions [4, D])."""
        return self.ed.decode(self.content[sel],
                              Editor.apply_direction(self.components[sel], directions, strength, comps))


class ReferenceEdits:
    """Reference edit makers that calibrate the benchmark: ``oracle`` returns the exact ground
    truth of every edit (it must meet every target); ``no_edit`` reconstructs perfectly and
    returns every face unchanged (it must meet no editing target)."""

    def __init__(self, kind: str):
        if kind not in REFERENCES:
            raise UserError(f"unknown reference {kind!r}; valid: {', '.join(REFERENCES)}")
        self.kind = kind

    def reconstruct(self, x: Tensor) -> Tensor:
        self.x = x
        return x.clone()

    def render(self, x: Tensor) -> Tensor:
        return x.clone()

    def transfer(self, ref: list[int], comp: str, ground_truth: Tensor) -> Tensor:
        return ground_truth.clone() if self.kind == "oracle" else self.x.clone()

    def move(self, sel: list[int], directions: Tensor, strength: float, comps: str, ground_truth: Tensor) -> Tensor:
        return ground_truth.clone() if self.kind == "oracle" else self.x[sel].clone()
