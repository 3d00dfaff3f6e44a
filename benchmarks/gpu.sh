#!/usr/bin/env bash
# The GPU checks in one run: the gpu-marked tests, then the accelerator benchmarks; a markdown
# summary in OUT_DIR/summary.md. At most a few minutes on one GPU. From the repository root:
#   bash benchmarks/gpu.sh [--smoke] [OUT_DIR]
# --smoke: tiny sizes on whatever device there is (CI runs it on a CPU, where the gpu-marked tests
# are skipped), to know the script works before a GPU is at hand.
set -euo pipefail
mode=""
if [ "${1:-}" = "--smoke" ]; then mode="--smoke"; shift; fi
out="${1:-${OUT:-benchmarks/.gpu}}"
mkdir -p "$out"
python -c "import torch; print('CUDA:', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$out/device.txt"
set +e
python -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py > "$out/gpu_tests.txt" 2>&1
tests_rc=$?
set -e
tail -n 3 "$out/gpu_tests.txt"
python benchmarks/gpu.py $mode --out "$out/gpu_benchmarks.md"
# paper-scale: the surface command on the whole (synthetic) 50 000-image set, full precision and
# the batched bf16 path; the smoke mode checks the script on a few images on this machine
if [ -n "$mode" ]; then
  python benchmarks/paper_scale.py --smoke --devices 1 --accelerator auto --out "$out/paper_scale.md"
else
  python benchmarks/paper_scale.py --accelerator gpu --devices 1 --num_points 5 --eval_batch_size 1000 \
    --out "$out/paper_scale_fp32.md"
  python benchmarks/paper_scale.py --accelerator gpu --devices 1 --num_points 9 --eval_batch_size 1000 \
    --points_per_forward auto --autocast bf16 --out "$out/paper_scale_bf16.md"
  cat "$out/paper_scale_fp32.md" "$out/paper_scale_bf16.md" > "$out/paper_scale.md"
fi
{
  echo "# GPU checks ($(date -u +%Y-%m-%d), mode: ${mode:-full})"
  echo
  cat "$out/device.txt"
  echo
  echo "gpu-marked tests: $(tail -n 1 "$out/gpu_tests.txt")"
  echo
  cat "$out/gpu_benchmarks.md"
  echo
  echo "## Paper-scale landscapes (benchmarks/paper_scale.py)"
  echo
  cat "$out/paper_scale.md"
} > "$out/summary.md"
cat "$out/summary.md"
exit $tests_rc
