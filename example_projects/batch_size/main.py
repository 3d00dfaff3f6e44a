"""LightningCLI entry point of the batch-size experiment (the digits CNN of ../digits).

    python example_projects/batch_size/main.py fit \
        --config example_projects/batch_size/base.yaml --config example_projects/batch_size/small_batch.yaml
"""

import os
import sys

from lightning.pytorch.cli import LightningCLI

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "digits"))

from digits import DigitsClassifier, DigitsDataModule  # noqa: E402


def main(args=None) -> LightningCLI:
    return LightningCLI(DigitsClassifier, DigitsDataModule, seed_everything_default=0, args=args)


if __name__ == "__main__":
    main()
