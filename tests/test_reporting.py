"""Where results go without a logger: a fresh version folder, chosen safely when runs start together."""

import os

from lightning.pytorch import Trainer

from lightning_landscape import reporting


def test_a_version_taken_by_another_run_meanwhile_is_skipped(tmp_path, monkeypatch):
    root = tmp_path / reporting.FALLBACK_DIR
    root.mkdir()
    real_makedirs = os.makedirs
    calls = []

    def another_run_wins_first(path, *args, **kwargs):
        calls.append(os.path.basename(path))
        if len(calls) == 1:  # a concurrent run creates version_0 just before we do
            real_makedirs(path)
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(reporting.os, "makedirs", another_run_wins_first)
    trainer = Trainer(default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False)
    reporting.prepare_output_dir(trainer)
    assert calls == ["version_0", "version_1"]
    assert reporting.output_dir(trainer, "x") == str(root / "version_1" / "x")


def test_result_files_are_read_back_by_tag_in_the_order_of_their_steps(tmp_path):
    from lightning_landscape.reporting import result_file_name, result_files

    folder = tmp_path / "landscapes"
    folder.mkdir()
    names = [result_file_name("a-b", 1, 120), result_file_name("a-b", 0, 8), result_file_name("c", 0, 8)]
    for name in [*names, "a-b-epoch=x-step=1.npz", "notes.txt"]:
        (folder / name).write_bytes(b"")
    found = result_files(str(tmp_path), "landscapes")
    assert {tag: [os.path.basename(p) for p in paths] for tag, paths in found.items()} == {
        "a-b": [names[1], names[0]],
        "c": [names[2]],
    }
    assert result_files(str(tmp_path), "trajectory") == {}
