"""Documentation that cannot lie: the site builds in strict mode, every public name has its API
entry and a docstring example (run by ``--doctest-modules``), and every fenced Python block of the
README and of the site's pages runs.

A block that needs a GPU or files we cannot ship is preceded by ``<!-- skip: <reason> -->`` and
skipped with that reason; none is today. Blocks run in order, one namespace per page, after
``docs_namespace.namespace()`` (a user's small LightningModule, the digits data, trained solutions
and their checkpoints), in a temporary folder."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

import lightning_landscape as ll
import lightning_landscape.plotting as plotting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
PAGES = ["README.md"] + sorted(
    os.path.relpath(os.path.join(d, f), ROOT)
    for d, _, files in os.walk(DOCS)
    for f in files
    if f.endswith(".md")
) + sorted(f"example_projects/{n}/README.md" for n in os.listdir(os.path.join(ROOT, "example_projects"))
           if os.path.exists(os.path.join(ROOT, "example_projects", n, "README.md")))  # fmt: skip
BLOCK = re.compile(r"(<!-- skip: (?P<reason>[^>]*) -->\s*\n)?```python\n(?P<code>.*?)```", re.S)
PUBLIC = [n for n in ll.__all__ if n != "__version__"]


def _blocks(page: str) -> list[tuple[str, str | None]]:
    text = open(os.path.join(ROOT, page), encoding="utf-8").read()
    return [(m.group("code"), m.group("reason")) for m in BLOCK.finditer(text)]


PAGES_WITH_CODE = [p for p in PAGES if _blocks(p)]


@pytest.mark.skipif(
    shutil.which("mkdocs") is None
    and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "mkdocs")),
    reason="mkdocs is not installed (pip install '.[docs]')",
)
def test_the_site_builds_in_strict_mode(tmp_path):
    """A broken link, a missing page or a docstring mkdocstrings cannot read fails the build."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"strict build: {time.perf_counter() - started:.1f} s")
    assert (tmp_path / "site" / "api" / "monitors" / "index.html").exists()
    assert (tmp_path / "site" / "gallery" / "digits" / "index.html").exists()
    roles = re.compile(r":(func|class|mod|meth|data|attr):<code>")
    shown = [p.name for p in (tmp_path / "site" / "api").rglob("*.html") if roles.search(p.read_text())]
    assert not shown, shown  # every Sphinx role of a docstring is shown as the name it refers to


def test_every_public_name_has_its_api_entry():
    entries = set()
    for page in os.listdir(os.path.join(DOCS, "api")):
        entries |= set(re.findall(r"^::: ([\w.]+)$", open(os.path.join(DOCS, "api", page)).read(), re.M))
    for module, names in ((ll, PUBLIC), (plotting, plotting.__all__)):
        for name in names:
            obj = getattr(module, name)
            assert f"{obj.__module__}.{obj.__qualname__}" in entries, name


def test_every_public_name_has_a_docstring_example():
    missing = [
        n
        for module, names in ((ll, PUBLIC), (plotting, plotting.__all__))
        for n in names
        if ">>>" not in (inspect.getdoc(getattr(module, n)) or "")
    ]
    assert not missing, missing


def test_the_readme_is_a_landing_page_and_every_page_is_in_the_site():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert len(readme.splitlines()) <= 200
    nav = open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8").read()
    pages = [os.path.relpath(p, DOCS) for p in PAGES if p.startswith("docs/")]
    missing = [p for p in pages if p not in nav]
    assert not missing, missing


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The names every page's blocks start from, built once in a folder the blocks run in."""
    import matplotlib

    matplotlib.use("Agg")
    folder = tmp_path_factory.mktemp("docs")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from docs_namespace import namespace

    here = os.getcwd()
    os.chdir(folder)
    try:
        names = namespace()
    finally:
        os.chdir(here)
    return folder, names


@pytest.mark.parametrize("page", PAGES_WITH_CODE)
def test_every_python_block_of_the_page_runs(page, shared, monkeypatch):
    folder, start = shared
    monkeypatch.chdir(folder)
    names = dict(start)
    ran = 0
    for index, (code, reason) in enumerate(_blocks(page)):
        if reason is not None:
            continue  # skipped with its stated reason (none is today)
        try:
            exec(compile(code, f"{page} block {index + 1}", "exec"), names)
        except Exception as error:  # noqa: BLE001 - report which block failed and why
            pytest.fail(f"{page}, python block {index + 1}: {type(error).__name__}: {error}\n{code}")
        ran += 1
    assert ran == len(_blocks(page))
