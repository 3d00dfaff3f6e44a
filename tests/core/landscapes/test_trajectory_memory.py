"""The trajectory PCA works chunk by chunk: its working memory is bounded, whatever the number of
snapshots, and the result does not depend on the chunk size (issue 14, defect 9)."""

from __future__ import annotations

import sys
import threading
import time

import pytest
import torch

from lightning_landscape.core.landscapes.trajectory import SnapshotBuffer, pca_directions


def _anonymous_rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon")


def _peak_growth(work) -> tuple[object, int]:
    """``work()``'s result and the largest growth of anonymous resident memory while it ran."""
    baseline, peak, running = _anonymous_rss_bytes(), [0], [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], _anonymous_rss_bytes())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = work()
    finally:
        running[0] = False
        sampler.join()
    return result, max(peak[0], _anonymous_rss_bytes()) - baseline


def test_the_result_does_not_depend_on_the_chunk_size():
    g = torch.Generator().manual_seed(0)
    final = {"a": torch.randn(7, 5, generator=g), "b": torch.randn(3, generator=g)}
    snapshots = [{k: v + torch.randn(v.shape, generator=g) for k, v in final.items()} for _ in range(6)]
    whole = pca_directions(snapshots, final, k=2)
    tiny = pca_directions(snapshots, final, k=2, chunk_bytes=1)  # one element per chunk
    torch.testing.assert_close(tiny.coords, whole.coords, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(tiny.residuals, whole.residuals, rtol=1e-10, atol=1e-12)
    for a, b in zip(tiny.directions, whole.directions):
        for name in final:
            torch.testing.assert_close(a[name], b[name])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_spilled_snapshots_are_reduced_within_the_chunk_budget(tmp_path):
    numel, n, chunk = 1_000_000, 11, 4 * 2**20  # 11 snapshots of 4 MB, 4 MB chunks
    buffer = SnapshotBuffer(budget_bytes=0, spill_dir=str(tmp_path))
    g = torch.Generator().manual_seed(0)
    final = {"w": torch.randn(numel, generator=g)}
    for epoch in range(n):
        buffer.append({"w": final["w"] + torch.randn(numel, generator=g)}, epoch=epoch)
    assert len(buffer.spilled_files) == n and buffer.bytes_in_memory == 0
    snapshots = list(buffer)  # memory-mapped files
    result, growth = _peak_growth(lambda: pca_directions(snapshots, final, k=2, chunk_bytes=chunk))
    # Stacking every snapshot's differences at once (the old way) grew the heap by 435 MB here; in
    # chunks it is about four chunks plus the 2 × 4 MB output (32 MB alone; up to ~70 MB after other
    # tests, when glibc keeps freed chunks on the heap instead of unmapping them)
    assert growth < 128 * 2**20, f"peak growth {growth / 2**20:.1f} MB"
    assert result.coords.shape == (n, 2)
