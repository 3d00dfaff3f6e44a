"""The package's one-way layering: core is pure torch; nothing imports callbacks (acceptance 9)."""

import ast
import pathlib
import subprocess
import sys

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
                "lightning_landscape._version",
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


FORBIDDEN_IN_CORE = {"lightning", "lightning_fabric", "pytorch_lightning", "matplotlib"}


def _loaded_after(statement: str) -> set[str]:
    """Top-level names of the modules a fresh interpreter holds after ``statement``."""
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_importing_core_loads_neither_lightning_nor_matplotlib():
    for statement in ("import lightning_landscape.core", "from lightning_landscape import compute_landscape"):
        loaded = _loaded_after(statement)
        assert not {m.split(".")[0] for m in loaded} & FORBIDDEN_IN_CORE, statement
        assert "lightning_landscape.callbacks" not in loaded, statement
    # the check can fail: the callbacks do load Lightning
    assert "lightning" in {m.split(".")[0] for m in _loaded_after("import lightning_landscape.callbacks")}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _load_time_imports(path: pathlib.Path) -> set[str]:
    """The package's modules ``path`` imports when it is loaded: top-level statements only (not
    inside functions or ``if TYPE_CHECKING:``), as absolute names."""
    found = set()
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
            # ``from . import x`` imports the submodule x, not the package it is part of
            candidates = [f"{module}.{alias.name}" for alias in node.names] + (
                [module] if node.module else []
            )
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in candidates if name and name.startswith("lightning_landscape")}
    return found


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (name -> names it imports) as a path, or None."""
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> list[str] | None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return trail[trail.index(target) :] + [target]
            if target not in state and (cycle := visit(target, trail + [target])):
                return cycle
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [name])):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {n: {m for m in _load_time_imports(p) if m in modules and m != n} for n, p in modules.items()}
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))
    assert graph["lightning_landscape"] <= {"lightning_landscape._version"}  # the root loads lazily
    assert graph["lightning_landscape.callbacks"]  # the graph is read (the callbacks import modules)
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # and checked
