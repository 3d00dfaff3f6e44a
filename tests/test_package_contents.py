"""The package folder holds source only in the repository (the built wheel: ``test_release.py``), and a run
without a logger never writes into a folder called ``lightning_landscape`` (issue 25, item 3)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from problems import fit_classifier

from lightning_landscape import LossLandscapeMonitor, SharpnessMonitor, TrajectoryMonitor
from lightning_landscape.reporting import FALLBACK_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git_files(*args: str) -> list[str]:
    if shutil.which("git") is None or not os.path.isdir(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    out = subprocess.run(["git", "ls-files", *args], cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def _is_source(name: str) -> bool:
    return name.endswith(".py") or os.path.basename(name) == "py.typed"


def test_the_package_folder_tracks_only_source_files():
    tracked = _git_files("lightning_landscape")
    assert tracked and all(_is_source(name) for name in tracked), [n for n in tracked if not _is_source(n)]
    # what a logger-less run writes is ignored wherever it lands
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"{FALLBACK_DIR}/version_0/x.npz"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0


def test_a_run_without_a_logger_writes_nothing_into_a_lightning_landscape_folder(tmp_path, monkeypatch):
    """Run from a folder holding ``lightning_landscape/`` (our repository root, say), with the
    trainer's default root: the results go to ``landscape_logs/version_N``, never inside it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lightning_landscape").mkdir()
    (tmp_path / "lightning_landscape" / "__init__.py").write_text("")
    small = dict(num_samples=32, eval_batch_size=16)
    callbacks = [
        LossLandscapeMonitor(every_n_epochs=1, dims=1, num_points=3, **small),
        SharpnessMonitor(every_n_epochs=1, measures=["top_eigenvalue"], **small),
        TrajectoryMonitor(num_points=3, snapshot_memory_mb=1e-6, **small),  # spills its snapshots
    ]
    fit_classifier(tmp_path, callbacks, seed=0, default_root_dir=None, max_epochs=3)
    assert os.listdir(tmp_path / "lightning_landscape") == ["__init__.py"]
    written = {os.path.relpath(p, tmp_path) for c in callbacks for p in c.saved_files}
    assert written and all(p.startswith(os.path.join(FALLBACK_DIR, "version_0")) for p in written), written
    assert os.listdir(tmp_path / FALLBACK_DIR / "version_0" / "trajectory")
