"""The project's layers, lowest first: utils -> model -> data_loader -> editing | trainer -> evaluation
-> top-level scripts. A module imports only from its own package or from lower layers; editing and
trainer (one level) do not import each other. Every import counts: top-level, inside functions,
``from X import``, relative."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"utils": 0, "model": 1, "data_loader": 2, "editing": 3, "trainer": 3, "evaluation": 4}
SCRIPTS = {"train", "reconstruction", "component_transfer", "attr_manipulation", "app"}
SCRIPT_LAYER = 5


def layer(top: str):
    """Layer of a top-level project name, or None for third-party modules."""
    if top in LAYERS:
        return LAYERS[top]
    return SCRIPT_LAYER if top in SCRIPTS else None


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``source``, the code of ``module``."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            out.append((node.lineno, name))
    return out


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Upward imports (and imports between editing and trainer) of ``module``."""
    src_top = module.split(".")[0]
    src_layer = layer(src_top)
    found = []
    for line, name in imported_modules(source, module, is_package):
        top = name.split(".")[0]
        target = layer(top)
        if target is None or top == src_top:
            continue
        if target >= src_layer:
            found.append(f"{module}:{line} imports {name} (layer {target} >= {src_layer})")
    return found


def project_modules() -> list[tuple[Path, str, bool]]:
    mods = [(p, p.stem, False) for p in sorted(ROOT.glob("*.py"))]
    for pkg in sorted(LAYERS):
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            mods.append((p, ".".join(parts), is_package))
    return mods


def test_every_package_has_a_layer():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(LAYERS), "give each project package a layer in tests/test_layers.py"
    assert {p.stem for p in ROOT.glob("*.py")} <= SCRIPTS | {"conftest"}


def test_no_upward_imports():
    mods = project_modules()
    assert len(mods) > 40
    found = []
    for path, module, is_package in mods:
        found += violations(path.read_text(), module, is_package)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("module,is_package,code,bad", [
    ("model.foo", False, "from trainer.losses import x", True),
    ("model.foo", False, "def f():\n    import evaluation.metrics\n", True),  # inside a function
    ("model.foo", False, "from utils.errors import UserError\nimport torch", False),
    ("editing.foo", False, "from trainer import config", True),  # same layer, other package
    ("trainer.foo", False, "from editing import Editor", True),
    ("editing.foo", False, "from .editor import Editor\nfrom data_loader import synthfaces", False),
    ("data_loader.synthfaces.export", False, "from ..attributes import f", False),
    ("data_loader.synthfaces.export", False, "from ...editing import Editor", True),  # relative, resolved
    ("data_loader.synthfaces", True, "from . import dataset", False),
    ("utils.cli", False, "from model.config import ConfigError", True),
    ("evaluation.foo", False, "import train", True),
    ("train", False, "from evaluation import metrics\nfrom editing import Editor", False),
])
def test_checker_catches_violations(module, is_package, code, bad):
    assert bool(violations(code, module, is_package)) == bad


def test_relative_imports_resolve():
    assert imported_modules("from ..attributes import f", "data_loader.synthfaces.export") == [
        (1, "data_loader.attributes")]
    assert imported_modules("from . import dataset", "data_loader.synthfaces", is_package=True) == [
        (1, "data_loader.synthfaces")]
