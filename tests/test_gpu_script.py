"""``benchmarks/gpu.sh --smoke`` runs end to end on whatever device there is and writes its summary."""

import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_gpu_script_in_smoke_mode_writes_a_summary(tmp_path):
    completed = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--smoke", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    summary = (tmp_path / "summary.md").read_text()
    assert "gpu-marked tests:" in summary and ("skipped" in summary or "passed" in summary)
    for model in ("digits CNN", "ResNet-20"):
        for what in ("floor", "ours, sequential", "points_per_forward=auto", "bf16 autocast", "top Hessian"):
            assert any(line.startswith(f"| {model}") and what in line for line in summary.splitlines()), (
                model,
                what,
            )
    assert "## Paper-scale landscapes" in summary
    assert any(line.startswith("| 1 | 2 |") and line.endswith(" h |") for line in summary.splitlines())
