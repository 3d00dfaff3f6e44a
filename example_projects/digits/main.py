"""LightningCLI entry point of the digits example.

python example_projects/digits/main.py fit --config example_projects/digits/config.yaml
tensorboard --logdir lightning_logs
"""

import os
import sys

from lightning.pytorch.cli import LightningCLI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from digits import DigitsClassifier, DigitsDataModule  # noqa: E402


def main(args=None) -> LightningCLI:
    return LightningCLI(DigitsClassifier, DigitsDataModule, seed_everything_default=0, args=args)


if __name__ == "__main__":
    main()
