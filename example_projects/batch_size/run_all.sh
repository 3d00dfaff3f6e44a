#!/usr/bin/env bash
# Train the four runs, then draw the comparison. From the repository root:
#   bash example_projects/batch_size/run_all.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for run in small_batch large_batch small_batch_wd large_batch_wd; do
  echo "== $run"
  python "$here/main.py" fit --config "$here/base.yaml" --config "$here/$run.yaml" "$@"
done
python "$here/compare.py" lightning_logs/batch_size --out "$here/figures"
