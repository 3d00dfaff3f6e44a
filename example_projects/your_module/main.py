"""LightningCLI entry point of the your_module example.

python example_projects/your_module/main.py fit --config example_projects/your_module/regression.yaml
python example_projects/your_module/main.py fit --config example_projects/your_module/language_model.yaml
"""

import os
import sys

from lightning.pytorch.cli import LightningCLI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(args=None) -> LightningCLI:
    return LightningCLI(args=args, seed_everything_default=0)


if __name__ == "__main__":
    main()
