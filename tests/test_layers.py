"""The package's one-way layering: core is pure torch; nothing imports callbacks (acceptance 9)."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "lightning_landscape"


def _imports_from_text(text: str) -> list[tuple[int, str]]:
    """(relative level, module) for every import statement in a source text."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    return _imports_from_text(path.read_text())


def _absolute(path: pathlib.Path, level: int, module: str) -> str:
    if level == 0:
        return module
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)[:-level]
    return ".".join(parts + ([module] if module else []))


CORE_FILES = sorted((PACKAGE / "core").glob("*.py"))


def test_core_files_exist():
    assert len(CORE_FILES) >= 6


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_imports_neither_lightning_nor_matplotlib(path):
    for level, module in _imports(path):
        name = _absolute(path, level, module)
        top = name.split(".")[0]
        assert top not in {"lightning", "pytorch_lightning", "matplotlib"}, f"{path.name} imports {name}"
        if top == "lightning_landscape":
            allowed = name.startswith("lightning_landscape.core") or name in {
                "lightning_landscape",
                "lightning_landscape._checks",
            }
            assert allowed, f"{path.name} reaches out of core: {name}"


@pytest.mark.parametrize(
    "path", sorted(p for p in PACKAGE.rglob("*.py") if "callbacks" not in p.parts), ids=lambda p: p.name
)
def test_nothing_but_the_package_root_imports_callbacks(path):
    if path == PACKAGE / "__init__.py":
        return
    for level, module in _imports(path):
        assert ".callbacks" not in "." + _absolute(path, level, module), f"{path} imports callbacks"


def test_the_checker_would_catch_a_violation():
    bad = PACKAGE / "core" / "params.py"
    text = "import matplotlib.pyplot as plt\nfrom ..callbacks import LossLandscapeMonitor\n"
    names = [_absolute(bad, lvl, mod) for lvl, mod in _imports_from_text(text)]
    assert names == ["matplotlib.pyplot", "lightning_landscape.callbacks"]
