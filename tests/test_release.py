"""What a release builds: an sdist and a wheel from the files in the repository (tracked, or new and
not ignored), built in a temporary folder with setuptools' own build hooks, with valid metadata,
the declared license beside them, the package and ``py.typed`` only in the wheel, and the tests,
examples, benchmarks and documentation in the sdist."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
import tomllib
from packaging.metadata import Metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYPROJECT = tomllib.loads(open(os.path.join(ROOT, "pyproject.toml")).read())["project"]


def _repository_files() -> list[str]:
    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout: the files of a release cannot be listed")
    command = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [n for n in out.splitlines() if os.path.exists(os.path.join(ROOT, n))]


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, str]:
    """Build both distributions from a copy of the repository's files (nothing written into it)."""
    root = tmp_path_factory.mktemp("release")
    source, out = root / "source", root / "dist"
    out.mkdir()
    for name in _repository_files():
        os.makedirs(source / os.path.dirname(name), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), source / name)
    built = {}
    for kind in ("sdist", "wheel"):  # one process each: setuptools keeps state between the two
        build = (
            f"import sys; from setuptools import build_meta as b; print('BUILT', b.build_{kind}(sys.argv[1]))"
        )
        done = subprocess.run(
            [sys.executable, "-c", build, str(out)], cwd=source, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
        built[kind] = next(line for line in done.stdout.splitlines() if line.startswith("BUILT ")).split()[1]
    sdist, wheel = built["sdist"], built["wheel"]
    return {"sdist": str(out / sdist), "wheel": str(out / wheel)}


def _wheel_names(dists) -> list[str]:
    return zipfile.ZipFile(dists["wheel"]).namelist()


def test_the_metadata_of_both_distributions_is_valid_and_complete(dists):
    wheel = zipfile.ZipFile(dists["wheel"])
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    with tarfile.open(dists["sdist"]) as sdist:
        pkg_info = next(
            m for m in sdist.getmembers() if m.name.count("/") == 1 and m.name.endswith("PKG-INFO")
        )
        texts = [wheel.read(info).decode(), sdist.extractfile(pkg_info).read().decode()]
    for text in texts:
        metadata = Metadata.from_email(text, validate=True)  # raises on any invalid field
        assert metadata.name == PYPROJECT["name"] and str(metadata.version) == PYPROJECT["version"]
        assert metadata.license_expression == "Apache-2.0" and metadata.license_files == ["LICENSE"]
        assert str(metadata.requires_python) == PYPROJECT["requires-python"]
        assert {"Repository", "Changelog", "Issues"} <= set(metadata.project_urls or {})
        assert "Typing :: Typed" in (metadata.classifiers or [])
        assert metadata.description and "lightning_landscape" in metadata.description  # the README
        assert {r.name for r in metadata.requires_dist or []} >= {"torch", "lightning", "numpy"}


def test_the_wheel_holds_only_the_package_and_py_typed(dists):
    names = _wheel_names(dists)
    package = [n for n in names if not n.split("/")[0].endswith(".dist-info")]
    outside = [
        n
        for n in package
        if not (n.startswith("lightning_landscape/") and (n.endswith(".py") or n.endswith("/py.typed")))
    ]
    assert package and not outside, outside
    assert "lightning_landscape/py.typed" in package
    modules = {n for n in _repository_files() if n.startswith("lightning_landscape/") and n.endswith(".py")}
    assert modules <= set(package)  # every module of the package ships
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_sdist_holds_the_tests_examples_benchmarks_and_documents(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        names = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    expected = {
        "LICENSE", "README.md", "CHANGELOG.md", "CONTRIBUTING.md", "pyproject.toml",
        "tests/test_release.py", "tests/conftest.py", "tests/core/base/result_files/make_main_files.py",
        "example_projects/digits/main.py", "example_projects/digits/config.yaml",
        "benchmarks/README.md", "docs/architecture.md", ".ci/run",
    }  # fmt: skip
    assert expected <= names, sorted(expected - names)
    tracked_tests = {n for n in _repository_files() if n.startswith("tests/")}
    assert tracked_tests <= names, sorted(tracked_tests - names)[:5]
    assert not [n for n in names if "__pycache__" in n or n.startswith((".venv", "lightning_logs"))]


def test_the_license_file_is_the_declared_license():
    text = open(os.path.join(ROOT, "LICENSE")).read()
    assert PYPROJECT["license"] == "Apache-2.0" and PYPROJECT["license-files"] == ["LICENSE"]
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text


def test_the_changelog_keeps_an_unreleased_section_above_the_current_version():
    headings = [line for line in open(os.path.join(ROOT, "CHANGELOG.md")) if line.startswith("## ")]
    assert headings[0].strip() == "## [Unreleased]"
    assert headings[1].startswith(f"## [{PYPROJECT['version']}]")
