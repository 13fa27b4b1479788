"""Typed configuration blocks: one dataclass per JSON block, one type vocabulary, unknown keys
rejected with the list of valid ones.

Field annotations (strings under ``from __future__ import annotations``) use the names of
:data:`TYPES`, ``Optional[T]`` (null allowed) and ``Union[A, B]``; other annotations (nested
blocks) are left to the caller.
"""
from __future__ import annotations

import dataclasses
import math
import reprlib
from typing import Any, Callable, Iterable, Mapping, Optional

from utils.errors import ConfigError


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


#: annotation name -> (what the message says, check)
TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "int": ("int", _is_int),
    "float": ("float", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "bool": ("bool", lambda v: isinstance(v, bool)),
    "str": ("str", lambda v: isinstance(v, str)),
    "dict": ("dict", lambda v: isinstance(v, dict)),
    "list": ("list", lambda v: isinstance(v, (list, tuple))),
}


#: The longest value an error message shows (``shown``): a mistyped value can be megabytes long.
SHOWN_LENGTH = 80

_SHORT = reprlib.Repr()
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxfrozenset = _SHORT.maxdict = 6
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlong = 40
_SHORT.maxlevel = 3


def shown(value: Any, limit: int = SHOWN_LENGTH) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (ending in ``...`` when cut), on one
    line, without building the whole repr of a huge value: how error messages show a value."""
    text = _SHORT.repr(value).replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def _split_args(inner: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in inner:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return parts + [cur.strip()]


def _checker(annotation: str) -> Optional[tuple[str, Callable[[Any], bool]]]:
    """(description, check) of an annotation in the vocabulary, or None when it is not one."""
    if annotation.startswith("Optional[") and annotation.endswith("]"):
        inner = _checker(annotation[9:-1])
        return None if inner is None else (f"{inner[0]} or null", lambda v: v is None or inner[1](v))
    if annotation.startswith("Union[") and annotation.endswith("]"):
        parts = [_checker(a) for a in _split_args(annotation[6:-1])]
        if any(p is None for p in parts):
            return None
        return " or ".join(p[0] for p in parts), lambda v: any(p[1](v) for p in parts)
    return TYPES.get(annotation)


def check_value(annotation: Any, value: Any, where: str) -> None:
    """ConfigError unless ``value`` fits ``annotation`` (names outside the vocabulary pass)."""
    checker = _checker(_type_name(annotation))
    if checker is not None and not checker[1](value):
        raise ConfigError(f"{where} must be {checker[0]}, got {shown(value)} (expected type {checker[0]})")


def check_types(obj: Any, where: str) -> None:
    """Check every field of dataclass instance ``obj`` (call it first in ``__post_init__``)."""
    for f in dataclasses.fields(obj):
        check_value(f.type, getattr(obj, f.name), f"{where}.{f.name}")


def reject_unknown(keys: Iterable[str], valid: Iterable[str], where: str) -> None:
    """ConfigError naming the first key not in ``valid``, with the valid ones."""
    valid = list(valid)
    for key in keys:
        if key not in valid:
            raise ConfigError(f"unknown key {shown(key)} in {where}; valid keys: {', '.join(valid)}")


def required_fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def build(cls, data: Any, where: str, aliases: Optional[Mapping[str, str]] = None):
    """Dataclass ``cls`` from the JSON object ``data``: unknown keys, missing required keys and
    values of the wrong type fail with a ConfigError before ``cls`` is constructed. ``aliases``
    maps accepted alternative key names to field names."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a JSON object, got {type(data).__name__}")
    aliases = dict(aliases or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {aliases.get(k, k): v for k, v in data.items()}
    reject_unknown([k for k in data if aliases.get(k, k) not in fields], list(fields) + sorted(aliases), where)
    missing = [k for k in required_fields(cls) if k not in kwargs]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}; valid keys: {', '.join(fields)}")
    for name, value in kwargs.items():
        check_value(fields[name].type, value, f"{where}.{name}")
    return cls(**kwargs)


def check_range(where: str, value, lo=None, hi=None, lo_open: bool = False, optional: bool = False) -> None:
    """ConfigError naming ``where`` and the allowed range unless ``value`` is a finite number in
    it (``lo_open``: ``> lo`` instead of ``>= lo``; ``optional``: null allowed)."""
    if value is None and optional:
        return

    def num(x) -> str:
        return str(x) if isinstance(x, int) else f"{x:g}"

    parts = [f"{'>' if lo_open else '>='} {num(lo)}" if lo is not None else "",
             f"<= {num(hi)}" if hi is not None else ""]
    rng = " and ".join(p for p in parts if p) or "finite"
    whole = all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in (lo, hi))
    kind = "an integer" if whole and isinstance(value, int) and not isinstance(value, bool) else "a number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (isinstance(value, int) or math.isfinite(value))  # ints are finite (and may not fit a float)
    ok = ok and (lo is None or (value > lo if lo_open else value >= lo)) and (hi is None or value <= hi)
    if not ok:
        raise ConfigError(f"{where} must be {kind} {rng}{' or null' if optional else ''}, got {shown(value)}")


MAX_BASE_DEPTH = 8


def merge_config(base: Mapping, override: Mapping) -> dict:
    """``override`` laid over ``base``: objects merge key by key, ``null`` removes the key (the field
    then takes its default), any other value replaces. A block whose ``"type"`` differs from the
    base block's replaces it whole (its ``args`` belong to another class)."""
    out = dict(base)
    for key, value in override.items():
        old = out.get(key)
        if value is None:
            out.pop(key, None)
        elif (isinstance(value, Mapping) and isinstance(old, Mapping)
                and not ("type" in value and value.get("type") != old.get("type"))):
            out[key] = merge_config(old, value)
        else:
            out[key] = value
    return out


def resolve_base(data: Mapping, folder, read: Callable[[Any], Any], chain: tuple = ()) -> dict:
    """A JSON config with its ``"base"`` resolved: ``base`` names a parent config file (relative to
    ``folder``, the folder of the file that names it), whose resolved content this config's keys
    override (:func:`merge_config`). ``read(path)`` loads one file. Chains are followed up to
    :data:`MAX_BASE_DEPTH` files; a cycle is an error."""
    from pathlib import Path

    if not isinstance(data, Mapping) or "base" not in data:
        return dict(data) if isinstance(data, Mapping) else data
    data = dict(data)
    base = data.pop("base")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"base must be the path of a parent config file, got {shown(base)}")
    path = (Path(folder) / base).resolve()
    if path in chain:
        raise ConfigError(f"base: {path} is its own ancestor ({' -> '.join(str(p) for p in chain + (path,))})")
    if len(chain) >= MAX_BASE_DEPTH:
        raise ConfigError(f"base: more than {MAX_BASE_DEPTH} configs in the chain ending at {path}")
    if not path.is_file():
        raise ConfigError(f"base: parent config not found: {path}")
    parent = resolve_base(read(path), path.parent, read, chain + (path,))
    if not isinstance(parent, Mapping):
        raise ConfigError(f"base: {path} is not a JSON object")
    return merge_config(parent, data)
