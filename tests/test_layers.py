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


# -- the release and the project's variants ----------------------------------------------------
#: Names of the project's own study options (docs/study.md): only ``model/variants`` may know them.
STUDY_OPTIONS = ("content_input", "component_input", "crop_size", "crop_channels", "crop_exclusive", "ring_fit",
                 "ring_exclusive", "component_paint")
#: The modules of the release's training path: they never import a SynthFaces module.
OFFICIAL_TRAINER = ("trainer.iafaces_trainer", "trainer.base_trainer", "trainer.losses", "trainer.config",
                    "trainer.data", "trainer.registry", "trainer.released")


def study_option_mentions(source: str) -> list[str]:
    """Study options named as identifiers, attributes or strings in ``source`` (comments and
    docstrings aside)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STUDY_OPTIONS:
            found.add(node.value)
        elif isinstance(node, ast.Attribute) and node.attr in STUDY_OPTIONS:
            found.add(node.attr)
        elif isinstance(node, ast.Name) and node.id in STUDY_OPTIONS:
            found.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id in STUDY_OPTIONS:
            found.add(node.target.id)
    return sorted(found)


def test_only_the_variants_know_the_study_options():
    found = []
    for path, module, _ in project_modules():
        if module.startswith("model.") and not module.startswith("model.variants"):
            found += [f"{module}: {name}" for name in study_option_mentions(path.read_text())]
    assert not found, "\n".join(found)
    assert study_option_mentions("x = cfg.ring_fit\ny = {'crop_size': 1}") == ["crop_size", "ring_fit"]


def test_the_official_trainer_path_imports_no_synthfaces_module():
    import subprocess
    import sys

    for path, module, is_package in project_modules():
        if module in OFFICIAL_TRAINER:
            names = [n for _, n in imported_modules(path.read_text(), module, is_package)]
            assert not [n for n in names if n.startswith("data_loader.synthfaces") or n == "trainer.counterfactual"], \
                module
    # and at run time: importing the release's trainer loads no SynthFaces module
    code = ("import sys, trainer.iafaces_trainer, trainer.config, trainer.losses; "
            "print(sorted(m for m in sys.modules if m.startswith('data_loader.synthfaces') or "
            "m == 'trainer.counterfactual'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
