"""Redraw the newest landscapes of a run from its saved result files, without the model.

    python example_projects/digits/redraw.py lightning_logs/digits/version_0 --out landscape.png

Puts the 2D contour, filled contour and surface of the newest ``landscape-*.npz`` and the 1D curve
of the newest ``landscape_1d-*.npz`` side by side in one PNG.
"""

from __future__ import annotations

import argparse
import glob
import os

from lightning_landscape import LandscapeResult
from lightning_landscape.plotting import landscape_figures, save_side_by_side


def _newest(folder: str, prefix: str) -> str:
    files = sorted(glob.glob(os.path.join(folder, "landscapes", f"{prefix}-epoch=*.npz")))
    if not files:
        raise SystemExit(f"no {prefix}-epoch=*.npz under {folder}/landscapes")
    return files[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="a logger version folder, e.g. lightning_logs/digits/version_0")
    parser.add_argument("--out", default="landscape.png")
    parser.add_argument("--log-scale", action="store_true")
    args = parser.parse_args()

    figures = []
    for prefix in ("landscape", "landscape_1d"):
        result = LandscapeResult.load(_newest(args.run_dir, prefix))
        figures += landscape_figures(result, log_scale=args.log_scale).values()
    print(f"wrote {save_side_by_side(figures, args.out)}")


if __name__ == "__main__":
    main()
