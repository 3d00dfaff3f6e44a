"""The package's one-way layering.

- ``core`` is pure torch: no Lightning, no matplotlib, not even at import time;
- inside ``core``, the rooms import one way only: ``base`` ← ``linalg`` ← ``curvature`` ←
  ``landscapes`` ← ``measures`` (a room imports itself and the rooms before it), and no room imports
  the ``core`` package's own door (``lightning_landscape.core``);
- nothing but the package root imports ``callbacks``;
- the import graph of the whole package has no cycle, counting imports inside function bodies
  (where a cycle hides from Python, not from a reader).

Every rule is checked on the sources as text, so each test also plants a violation and sees it
caught.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "lightning_landscape"
ROOMS = ("base", "linalg", "curvature", "landscapes", "measures")
"""The rooms of ``core`` in their one-way order."""
CORE_MAY_ALSO_IMPORT = {"lightning_landscape._checks", "lightning_landscape._version"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, tuple[bool, str]]:
    """Module name → (is a package's ``__init__``, source text), for the whole package."""
    return {_module_name(p): (p.name == "__init__.py", p.read_text()) for p in PACKAGE.rglob("*.py")}


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """The ids of the import nodes under ``if TYPE_CHECKING:`` (seen by static tools only)."""
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden |= {id(inner) for inner in ast.walk(node)}
    return hidden


def imports(module: str, is_package: bool, text: str) -> list[tuple[int, str, bool]]:
    """(line, absolute module name, inside a function) of every import of ``text``, wherever it
    stands; ``from pkg import name`` also names ``pkg.name`` (which may be a submodule)."""
    tree = ast.parse(text)
    hidden = _type_checking_blocks(tree)
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for n in ast.walk(f)}
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, name, id(node) in inside) for name in names]
    return found


def room_of(module: str) -> str | None:
    """The room of a core module (``lightning_landscape.core.<room>...``), else None."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["lightning_landscape", "core"] else None


def layering_violations(sources: dict[str, tuple[bool, str]]) -> list[str]:
    """Every import of a core module that goes against the rooms' order, reaches outside the core
    or loads Lightning or matplotlib, function bodies included."""
    found = []
    for module, (is_package, text) in sorted(sources.items()):
        if not module.startswith("lightning_landscape.core"):
            continue
        here = room_of(module)
        for line, name, in_function in imports(module, is_package, text):
            where = f"{module}:{line}{' (in a function)' if in_function else ''} imports {name}"
            top = name.split(".")[0]
            if top in {"lightning", "lightning_fabric", "pytorch_lightning", "matplotlib"}:
                found.append(where)
            elif top != "lightning_landscape" or name not in sources:
                continue
            elif not name.startswith("lightning_landscape.core") and name not in CORE_MAY_ALSO_IMPORT:
                found.append(f"{where}: out of the core")
            elif here is not None and name == "lightning_landscape.core":
                found.append(f"{where}: the core's door, from inside a room")
            elif here is not None and (there := room_of(name)) is not None:
                if ROOMS.index(there) > ROOMS.index(here):
                    found.append(f"{where}: {here} comes before {there}")
    return found


def import_graph(sources: dict[str, tuple[bool, str]]) -> dict[str, set[str]]:
    """Module → the package's modules it imports anywhere in its text (function bodies included,
    ``if TYPE_CHECKING:`` blocks excluded); a package's ``__init__`` imports its submodules by
    loading them, so importing a submodule also depends on every package above it."""
    graph: dict[str, set[str]] = {}
    for module, (is_package, text) in sources.items():
        targets = set()
        for _, name, _ in imports(module, is_package, text):
            while name and name not in sources:  # ``pkg.name`` where name is no module
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (name -> names it imports) as a path, or None."""
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> list[str] | None:
        state[name] = "open"
        for target in sorted(graph.get(name, ())):
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


def _planted(sources, module: str, code: str) -> dict[str, tuple[bool, str]]:
    is_package, text = sources[module]
    return {**sources, module: (is_package, text + "\n\n" + code)}


def test_the_core_has_its_rooms_and_nothing_else_beside_them():
    core = PACKAGE / "core"
    assert sorted(p.name for p in core.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(ROOMS)
    assert [p.name for p in core.glob("*.py")] == ["__init__.py"]
    for room in ROOMS:
        modules = sorted(p.stem for p in (core / room).glob("*.py") if p.name != "__init__.py")
        assert 1 <= len(modules) <= 12, (room, modules)  # a room a reader can hold in mind


def test_the_rooms_import_one_way_and_the_core_stays_pure():
    sources = _sources()
    assert layering_violations(sources) == []
    assert len([m for m in sources if room_of(m)]) >= 25  # every room's modules were read


def test_an_import_against_the_order_is_caught_even_inside_a_function():
    sources = _sources()
    planted = _planted(
        sources,
        "lightning_landscape.core.linalg.spectrum",
        "def _late():\n    from ..landscapes.landscape import compute_landscape\n",
    )
    (found,) = layering_violations(planted)
    assert "(in a function) imports lightning_landscape.core.landscapes.landscape" in found
    assert "linalg comes before landscapes" in found
    planted = _planted(sources, "lightning_landscape.core.base.params", "import matplotlib.pyplot as plt\n")
    assert any(v.endswith("imports matplotlib.pyplot") for v in layering_violations(planted))
    planted = _planted(sources, "lightning_landscape.core.curvature.trace", "from ... import cli\n")
    assert any("out of the core" in v for v in layering_violations(planted))
    planted = _planted(sources, "lightning_landscape.core.measures.noise", "from .. import sharpness\n")
    assert any("the core's door" in v for v in layering_violations(planted))


def test_the_import_graph_has_no_cycle_counting_function_bodies():
    sources = _sources()
    graph = import_graph(sources)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert graph["lightning_landscape.callbacks"]  # the graph is read (the callbacks import modules)
    assert "lightning_landscape.core.base.params" in graph["lightning_landscape.core.landscapes.chunked"]
    # a cycle planted inside a function body is found
    planted = _planted(
        sources,
        "lightning_landscape.core.landscapes.directions",
        "def _late():\n    from .chunked import compute_landscape_in_chunks\n",
    )
    cycle = find_cycle(import_graph(planted))
    assert cycle is not None and "lightning_landscape.core.landscapes.chunked" in cycle
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_package_root_loads_lazily():
    _, text = _sources()["lightning_landscape"]
    top_level = {n for _, n, _ in imports("lightning_landscape", True, text)}
    assert top_level <= {"typing", "importlib", "typing.TYPE_CHECKING", "lightning_landscape._version",
                         "lightning_landscape._version.__version__"}  # fmt: skip


def test_static_tools_see_every_lazy_export():
    """The root's names load on first use; its ``if TYPE_CHECKING:`` block is what type checkers and
    IDEs see instead, so it must import each of them, from the module the name is loaded from."""
    import lightning_landscape

    _, text = _sources()["lightning_landscape"]
    seen = {
        (f".{node.module}", alias.name)
        for block in ast.walk(ast.parse(text))
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == {(module, name) for name, module in lightning_landscape._EXPORTS.items()}


@pytest.mark.parametrize(
    "path", sorted(p for p in PACKAGE.rglob("*.py") if "callbacks" not in p.parts), ids=lambda p: p.name
)
def test_nothing_but_the_package_root_imports_callbacks(path):
    if path == PACKAGE / "__init__.py":
        return
    module = _module_name(path)
    for _, name, _ in imports(module, path.name == "__init__.py", path.read_text()):
        assert not name.startswith("lightning_landscape.callbacks"), f"{path} imports {name}"


FORBIDDEN_IN_CORE = {"lightning", "lightning_fabric", "pytorch_lightning", "matplotlib"}


def _loaded_after(statement: str) -> set[str]:
    """Top-level names of the modules a fresh interpreter holds after ``statement``."""
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_importing_core_loads_neither_lightning_nor_matplotlib():
    for statement in (
        "import lightning_landscape.core",
        "from lightning_landscape import compute_landscape",
        "from lightning_landscape.core.measures.registry import register_measure",
        "from lightning_landscape.core.measures.report import SharpnessReport",
    ):
        loaded = _loaded_after(statement)
        assert not {m.split(".")[0] for m in loaded} & FORBIDDEN_IN_CORE, statement
        assert "lightning_landscape.callbacks" not in loaded, statement
    # the check can fail: the callbacks do load Lightning
    assert "lightning" in {m.split(".")[0] for m in _loaded_after("import lightning_landscape.callbacks")}
