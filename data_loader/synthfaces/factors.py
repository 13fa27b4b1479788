"""Factors of SynthFaces: sampling, labels, attribute flips and component transfer.

A face is fully described by a :class:`Factors` value (global factors plus one factor set per
component ``l_eye, r_eye, nose, mouth``); :func:`render` in ``render.py`` is a pure function of it.
All scalar "amount" factors live in ``[0, 1]``; positions are jitters in canonical (1024-px) units.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Union

import numpy as np

from model.boxes import COMPONENTS, component_indices

Color = tuple  # (r, g, b) floats in [0, 1]

GENERATOR_VERSION = "synthfaces-1"


# ----------------------------------------------------------------------------------------------
# Factor dataclasses
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GlobalFactors:
    """Factors that are not part of any component (may change pixels anywhere)."""

    male: float  # sex-like factor; Male = male > 0.5
    shift_x: float  # global alignment jitter of head/hair/glasses (canonical units)
    shift_y: float
    face_width: float
    face_length: float
    jaw: float
    skin_tone: float  # 0 light .. 1 dark (skin_color is derived from it at sampling time)
    skin_color: Color
    blush: float
    hair_kind: int  # index into HAIR_KINDS
    hair_color: Color
    hair_length: float  # 0 crop .. 1 long to the shoulders
    hair_volume: float
    hairline: float  # 0 low forehead .. 1 high forehead
    parting: float  # -1 .. 1
    bangs: float  # 0 none .. 1 full fringe
    bald: bool
    hair_seed: int
    clothes_color: Color
    bg_color1: Color
    bg_color2: Color
    bg_angle: float
    bg_pattern: int  # 0 plain, 1 stripes, 2 dots, 3 waves
    bg_freq: float
    bg_pattern_angle: float
    bg_phase: float
    bg_strength: float
    light_angle: float
    light_strength: float
    glasses: bool
    glasses_shape: int  # 0 oval, 1 rounded rectangle
    glasses_color: Color
    glasses_thickness: float
    glasses_size: float
    glasses_tint: float


@dataclass(frozen=True)
class EyeFactors:
    """One eye with its eyebrow and under-eye bag (everything inside the eye's box)."""

    openness: float  # 0 closed .. 1 wide open; closed = openness < 0.15
    size: float
    iris_color: Color
    iris_size: float
    gaze_x: float  # -1 .. 1 (image left .. right)
    gaze_y: float
    lashes: float
    brow_thickness: float
    brow_arch: float
    brow_height: float
    brow_color: Color
    bags: float
    dx: float  # position jitter inside the box (canonical units)
    dy: float
    texture_seed: int


@dataclass(frozen=True)
class NoseFactors:
    length: float
    width: float
    pointy: float
    shade: float
    freckles: float  # freckles drawn when > 0.7
    dx: float
    dy: float
    texture_seed: int


@dataclass(frozen=True)
class MouthFactors:
    """Lips, mouth interior, mustache and beard (the beard is confined to the mouth box)."""

    openness: float
    smile: float  # 0 slight frown, 0.25 neutral, 1 broad smile
    width: float
    lip_thickness: float
    lip_color: Color
    teeth: float  # teeth brightness
    beard: float  # visible when > 0.5 (density grows with the value)
    mustache: float
    beard_color: Color
    dx: float
    dy: float
    texture_seed: int


_PART_TYPES = {"glob": GlobalFactors, "l_eye": EyeFactors, "r_eye": EyeFactors, "nose": NoseFactors,
               "mouth": MouthFactors}


@dataclass(frozen=True)
class Factors:
    """All factors of one face. ``render(factors, size)`` is a pure function of this value."""

    glob: GlobalFactors
    l_eye: EyeFactors
    r_eye: EyeFactors
    nose: NoseFactors
    mouth: MouthFactors

    def component(self, name: str):
        if name not in COMPONENTS:
            raise ValueError(f"unknown component '{name}'; choose from {', '.join(COMPONENTS)}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-ready nested dict (colours become lists)."""
        out = {}
        for part in _PART_TYPES:
            d = dataclasses.asdict(getattr(self, part))
            out[part] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> "Factors":
        parts = {}
        for part, typ in _PART_TYPES.items():
            if part not in data:
                raise ValueError(f"factors dict misses the '{part}' part")
            names = {f.name for f in dataclasses.fields(typ)}
            given = dict(data[part])
            if set(given) != names:
                missing, extra = sorted(names - set(given)), sorted(set(given) - names)
                raise ValueError(f"factors['{part}'] keys mismatch (missing {missing}, unexpected {extra})")
            parts[part] = typ(**{k: (tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else v)
                                 for k, v in given.items()})
        return cls(**parts)


# ----------------------------------------------------------------------------------------------
# Palettes
# ----------------------------------------------------------------------------------------------
SKIN_PALETTE = np.array([(0.98, 0.87, 0.78), (0.94, 0.77, 0.64), (0.82, 0.62, 0.47),
                         (0.64, 0.45, 0.32), (0.45, 0.30, 0.21)], dtype=np.float64)
HAIR_KINDS = ("black", "dark_brown", "brown", "auburn", "blond", "gray")
HAIR_PALETTE = np.array([(0.09, 0.08, 0.08), (0.24, 0.15, 0.09), (0.44, 0.29, 0.16),
                         (0.58, 0.24, 0.11), (0.87, 0.72, 0.44), (0.70, 0.70, 0.70)], dtype=np.float64)
HAIR_PROBS = np.array([0.28, 0.25, 0.18, 0.08, 0.15, 0.06])
IRIS_PALETTE = np.array([(0.35, 0.20, 0.10), (0.20, 0.12, 0.07), (0.45, 0.38, 0.15),
                         (0.25, 0.50, 0.30), (0.25, 0.45, 0.75), (0.45, 0.52, 0.58)], dtype=np.float64)
IRIS_PROBS = np.array([0.32, 0.22, 0.12, 0.10, 0.16, 0.08])


def _col(a) -> Color:
    return tuple(float(min(max(x, 0.0), 1.0)) for x in a)


def _u(rng, lo=0.0, hi=1.0) -> float:
    return float(rng.uniform(lo, hi))


def _clip01(x) -> float:
    return float(min(max(x, 0.0), 1.0))


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------
def _sample_eye(rng, male: bool, hair_color, shift_x: float, shift_y: float) -> EyeFactors:
    closed = rng.random() < 0.25
    return EyeFactors(
        openness=_u(rng, 0.0, 0.06) if closed else _u(rng, 0.25, 1.0),
        size=_u(rng),
        iris_color=_col(IRIS_PALETTE[rng.choice(len(IRIS_PALETTE), p=IRIS_PROBS)] + rng.normal(0, 0.03, 3)),
        iris_size=_u(rng),
        gaze_x=float(np.clip(rng.normal(0, 0.35), -1, 1)),
        gaze_y=float(np.clip(rng.normal(0, 0.3), -1, 1)),
        lashes=_u(rng, 0.0, 0.5) if male else _u(rng, 0.4, 1.0),
        brow_thickness=_clip01(_u(rng) + (0.12 if male else -0.08)),
        brow_arch=_clip01(_u(rng) + (-0.1 if male else 0.1)),
        brow_height=_u(rng),
        brow_color=_col(np.asarray(hair_color) * 0.72 + 0.02 + rng.normal(0, 0.015, 3)),
        bags=_u(rng),
        dx=float(np.clip(0.6 * shift_x + rng.normal(0, 2.5), -7, 7)),
        dy=float(np.clip(0.6 * shift_y + rng.normal(0, 2.5), -7, 7)),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _similar_eye(rng, e: EyeFactors, shift_x: float, shift_y: float) -> EyeFactors:
    """The other eye of a face whose eyes agree: same state, small differences."""
    def near(v, s=0.04):
        return _clip01(v + rng.normal(0, s))

    if e.openness < 0.15:
        openness = _u(rng, 0.0, 0.06)
    else:
        openness = float(np.clip(e.openness + rng.normal(0, 0.04), 0.25, 1.0))
    return replace(
        e, openness=openness, size=near(e.size, 0.03), iris_size=near(e.iris_size, 0.03),
        brow_thickness=near(e.brow_thickness), brow_arch=near(e.brow_arch), brow_height=near(e.brow_height),
        bags=near(e.bags), lashes=near(e.lashes),
        dx=float(np.clip(0.6 * shift_x + rng.normal(0, 2.5), -7, 7)),
        dy=float(np.clip(0.6 * shift_y + rng.normal(0, 2.5), -7, 7)),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def sample_factors(seed: int, index: int) -> Factors:
    """Factors of face ``index`` of the data set with ``seed`` (a pure function of both)."""
    if int(seed) < 0 or int(index) < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    rng = np.random.default_rng([int(seed), int(index)])
    male_b = bool(rng.random() < 0.5)
    male = _u(rng, 0.62, 1.0) if male_b else _u(rng, 0.0, 0.38)
    shift_x = float(np.clip(rng.normal(0, 5), -10, 10))
    shift_y = float(np.clip(rng.normal(0, 5), -10, 10))

    skin_tone = _u(rng)
    pos = skin_tone * (len(SKIN_PALETTE) - 1)
    i0 = min(int(pos), len(SKIN_PALETTE) - 2)
    skin = SKIN_PALETTE[i0] + (SKIN_PALETTE[i0 + 1] - SKIN_PALETTE[i0]) * (pos - i0)
    skin = skin + rng.normal(0, 0.015, 3)

    hair_kind = int(rng.choice(len(HAIR_KINDS), p=HAIR_PROBS))
    if hair_kind == 5 and rng.random() < 0.6:  # gray hair is rarer for the young-looking half
        hair_kind = int(rng.choice(5, p=HAIR_PROBS[:5] / HAIR_PROBS[:5].sum()))
    hair_color = np.clip(HAIR_PALETTE[hair_kind] + rng.normal(0, 0.03, 3), 0, 1)
    if male_b:
        hair_length = _u(rng, 0.0, 0.35) if rng.random() < 0.85 else _u(rng, 0.35, 1.0)
    else:
        hair_length = _u(rng, 0.45, 1.0) if rng.random() < 0.85 else _u(rng, 0.1, 0.45)

    bg1 = rng.uniform(0.25, 0.9, 3)
    bg2 = np.clip(bg1 + rng.normal(0, 0.15, 3), 0, 1)
    glob = GlobalFactors(
        male=male, shift_x=shift_x, shift_y=shift_y,
        face_width=_u(rng), face_length=_u(rng), jaw=_u(rng),
        skin_tone=skin_tone, skin_color=_col(skin), blush=_u(rng, 0, 0.5) if male_b else _u(rng),
        hair_kind=hair_kind, hair_color=_col(hair_color), hair_length=hair_length, hair_volume=_u(rng),
        hairline=_clip01(_u(rng) + (0.2 if male_b else -0.1)), parting=_u(rng, -1, 1),
        bangs=(_u(rng, 0.3, 1.0) if (not male_b and rng.random() < 0.4) else 0.0),
        bald=bool(male_b and rng.random() < 0.07), hair_seed=int(rng.integers(0, 2**31 - 1)),
        clothes_color=_col(rng.uniform(0.05, 0.9, 3)),
        bg_color1=_col(bg1), bg_color2=_col(bg2), bg_angle=_u(rng, 0, 2 * math.pi),
        bg_pattern=int(rng.choice(4, p=[0.4, 0.2, 0.2, 0.2])), bg_freq=_u(rng, 2.0, 8.0),
        bg_pattern_angle=_u(rng, 0, math.pi), bg_phase=_u(rng, 0, 2 * math.pi), bg_strength=_u(rng, 0.02, 0.08),
        light_angle=_u(rng, 0, 2 * math.pi), light_strength=_u(rng, 0.0, 0.25),
        glasses=bool(rng.random() < 0.3), glasses_shape=int(rng.integers(0, 2)),
        glasses_color=_col(rng.uniform(0.0, 0.35, 3) if rng.random() < 0.7 else rng.uniform(0.2, 0.9, 3)),
        glasses_thickness=_u(rng), glasses_size=_u(rng), glasses_tint=_u(rng, 0.0, 0.3),
    )

    l_eye = _sample_eye(rng, male_b, hair_color, shift_x, shift_y)
    if rng.random() < 0.8:  # the two eyes agree most of the time
        r_eye = _similar_eye(rng, l_eye, shift_x, shift_y)
    else:  # independent eye state, same person (iris/brow colour and gaze shared)
        other = _sample_eye(rng, male_b, hair_color, shift_x, shift_y)
        r_eye = replace(other, iris_color=l_eye.iris_color, brow_color=l_eye.brow_color,
                        gaze_x=l_eye.gaze_x, gaze_y=l_eye.gaze_y, lashes=l_eye.lashes)

    nose = NoseFactors(
        length=_u(rng), width=_clip01(_u(rng) + (0.1 if male_b else -0.05)), pointy=_u(rng),
        shade=_u(rng, 0.3, 1.0), freckles=_u(rng),
        dx=float(np.clip(0.6 * shift_x + rng.normal(0, 2.5), -7, 7)),
        dy=float(np.clip(0.6 * shift_y + rng.normal(0, 2.5), -7, 7)),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )

    if male_b:
        beard = _u(rng, 0.55, 1.0) if rng.random() < 0.6 else _u(rng, 0.0, 0.45)
    else:
        beard = _u(rng, 0.55, 1.0) if rng.random() < 0.02 else _u(rng, 0.0, 0.3)
    if beard > 0.5:
        mustache = _u(rng, 0.55, 1.0) if rng.random() < 0.7 else _u(rng, 0.0, 0.45)
    else:
        mustache = _u(rng, 0.55, 1.0) if (male_b and rng.random() < 0.15) else _u(rng, 0.0, 0.45)
    lipstick = (not male_b) and rng.random() < 0.5
    lip = np.asarray(skin) * 0.72 + np.array([0.18, 0.02, 0.03])
    if lipstick:
        lip = lip * 0.4 + np.array([0.72, 0.12, 0.2]) * 0.6
    mouth = MouthFactors(
        openness=_u(rng, 0.0, 0.28) if rng.random() < 0.5 else _u(rng, 0.4, 1.0),
        smile=_u(rng), width=_u(rng),
        lip_thickness=_clip01(_u(rng) + (-0.1 if male_b else 0.1)),
        lip_color=_col(lip + rng.normal(0, 0.02, 3)), teeth=_u(rng, 0.8, 1.0),
        beard=beard, mustache=mustache,
        beard_color=_col(hair_color * 0.85 + rng.normal(0, 0.02, 3)),
        dx=float(np.clip(0.6 * shift_x + rng.normal(0, 2.5), -7, 7)),
        dy=float(np.clip(0.6 * shift_y + rng.normal(0, 2.5), -7, 7)),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )
    return Factors(glob=glob, l_eye=l_eye, r_eye=r_eye, nose=nose, mouth=mouth)


# ----------------------------------------------------------------------------------------------
# Attributes
# ----------------------------------------------------------------------------------------------
# name -> (list of (part, factor) averaged, threshold, direction, (value if False, value if True))
# direction +1: positive when mean > threshold; -1: positive when mean < threshold.
_ATTR_SPECS: dict[str, tuple[tuple[tuple[str, str], ...], float, int, tuple[float, float]]] = {
    "Mouth_Slightly_Open": ((("mouth", "openness"),), 0.35, +1, (0.15, 0.6)),
    "Smiling": ((("mouth", "smile"),), 0.5, +1, (0.25, 0.78)),
    "Bushy_Eyebrows": ((("l_eye", "brow_thickness"), ("r_eye", "brow_thickness")), 0.6, +1, (0.35, 0.85)),
    "Arched_Eyebrows": ((("l_eye", "brow_arch"), ("r_eye", "brow_arch")), 0.6, +1, (0.3, 0.9)),
    "Narrow_Eyes": ((("l_eye", "openness"), ("r_eye", "openness")), 0.4, -1, (0.7, 0.3)),
    "Bags_Under_Eyes": ((("l_eye", "bags"), ("r_eye", "bags")), 0.6, +1, (0.3, 0.9)),
    "Big_Nose": ((("nose", "length"), ("nose", "width")), 0.6, +1, (0.35, 0.85)),
    "Pointy_Nose": ((("nose", "pointy"),), 0.6, +1, (0.3, 0.9)),
    "Big_Lips": ((("mouth", "lip_thickness"),), 0.6, +1, (0.35, 0.85)),
    "No_Beard": ((("mouth", "beard"),), 0.5, -1, (0.8, 0.25)),
    "Mustache": ((("mouth", "mustache"),), 0.5, +1, (0.25, 0.8)),
    "Eyeglasses": ((("glob", "glasses"),), 0.5, +1, (0.0, 1.0)),
    "Male": ((("glob", "male"),), 0.5, +1, (0.25, 0.75)),
    "Left_Eye_Closed": ((("l_eye", "openness"),), 0.15, -1, (0.55, 0.03)),
    "Right_Eye_Closed": ((("r_eye", "openness"),), 0.15, -1, (0.55, 0.03)),
}

#: Ordered attribute names (the column order of every attribute vector / file).
ATTRIBUTES: tuple[str, ...] = tuple(_ATTR_SPECS)

#: Thresholds on the (mean) factor value; see ``_ATTR_SPECS`` for the direction.
THRESHOLDS: dict[str, float] = {k: v[1] for k, v in _ATTR_SPECS.items()}

#: Components whose factors define each attribute. ``Male`` is a global factor: editing it in
#: IA-FaceS uses all four components, but its ground-truth counterfactual (jaw/neck shape) is
#: global, see ``GLOBAL_ATTRIBUTES``. ``Eyeglasses`` belongs to no component.
ATTRIBUTE_COMPONENTS: dict[str, tuple[str, ...]] = {
    "Mouth_Slightly_Open": ("mouth",),
    "Smiling": ("mouth",),
    "Bushy_Eyebrows": ("l_eye", "r_eye"),
    "Arched_Eyebrows": ("l_eye", "r_eye"),
    "Narrow_Eyes": ("l_eye", "r_eye"),
    "Bags_Under_Eyes": ("l_eye", "r_eye"),
    "Big_Nose": ("nose",),
    "Pointy_Nose": ("nose",),
    "Big_Lips": ("mouth",),
    "No_Beard": ("mouth",),
    "Mustache": ("mouth",),
    "Eyeglasses": (),
    "Male": ("l_eye", "r_eye", "nose", "mouth"),
    "Left_Eye_Closed": ("l_eye",),
    "Right_Eye_Closed": ("r_eye",),
}

#: Attributes whose factor is global: flipping them changes pixels outside the component boxes.
GLOBAL_ATTRIBUTES: frozenset[str] = frozenset({"Eyeglasses", "Male"})


def _attr_value(f: Factors, name: str) -> float:
    pairs = _ATTR_SPECS[name][0]
    return sum(float(getattr(getattr(f, p), k)) for p, k in pairs) / len(pairs)


def _attr_bool(f: Factors, name: str) -> bool:
    _, thr, direction, _ = _ATTR_SPECS[name]
    v = _attr_value(f, name)
    return v > thr if direction > 0 else v < thr


def attributes(f: Factors) -> dict[str, bool]:
    """CelebA-style binary attributes of a face (ordered like ``ATTRIBUTES``)."""
    return {name: _attr_bool(f, name) for name in ATTRIBUTES}


def attribute_vector(f: Factors) -> np.ndarray:
    """Attributes as a float32 vector of 0/1 in ``ATTRIBUTES`` order."""
    return np.array([_attr_bool(f, n) for n in ATTRIBUTES], dtype=np.float32)


def _check_attr(name: str) -> None:
    if name not in _ATTR_SPECS:
        raise ValueError(f"unknown attribute '{name}'; choose from {', '.join(ATTRIBUTES)}")


def flip_attribute(f: Factors, name: str, target: bool) -> Factors:
    """Counterfactual factors with attribute ``name`` set to ``target``.

    Only the factor(s) defining the attribute change. If the label already equals ``target`` the
    factors are returned unchanged. Otherwise the (mean) factor value is moved clearly across the
    threshold to a fixed target value (``_ATTR_SPECS``); for attributes averaged over two factors
    (both eyes, nose length+width) both are shifted by the same amount (keeping their difference,
    clipped to [0, 1]). Correlated labels (e.g. ``Narrow_Eyes`` when closing an eye) may change too.
    """
    _check_attr(name)
    target = bool(target)
    if _attr_bool(f, name) == target:
        return f
    pairs, thr, direction, values = _ATTR_SPECS[name]
    goal = values[1] if target else values[0]
    if name == "Eyeglasses":
        return replace(f, glob=replace(f.glob, glasses=target))
    cur = {pk: float(getattr(getattr(f, pk[0]), pk[1])) for pk in pairs}
    for _ in range(6):  # shift all, clip, repeat until the mean reaches the goal
        delta = goal - sum(cur.values()) / len(cur)
        if abs(delta) < 1e-9:
            break
        cur = {pk: _clip01(v + delta) for pk, v in cur.items()}
    out = f
    for (part, key), v in cur.items():
        out = replace(out, **{part: replace(getattr(out, part), **{key: v})})
    if _attr_bool(out, name) != target:  # cannot happen with goals inside (0, 1); kept as a guard
        raise RuntimeError(f"could not flip {name}")
    return out


def transfer(target: Factors, reference: Factors, components: Union[str, Iterable[str]]) -> Factors:
    """Ground truth of component transfer: ``target`` with the given components' factors taken from
    ``reference``. ``components``: names among l_eye, r_eye, nose, mouth, or groups (eyes, all);
    a list or a comma-separated string."""
    comps = [COMPONENTS[i] for i in component_indices(components)]
    return replace(target, **{c: getattr(reference, c) for c in comps})
