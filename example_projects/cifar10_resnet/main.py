"""LightningCLI entry point: CIFAR ResNets with and without skip connections.

    python example_projects/cifar10_resnet/main.py fit \
        --config example_projects/cifar10_resnet/base.yaml \
        --config example_projects/cifar10_resnet/resnet20_noshort.yaml --data.root /path/to/data
"""

import os
import sys

from lightning.pytorch.cli import LightningCLI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cifar import CIFAR10DataModule, CifarClassifier  # noqa: E402


def main(args=None) -> LightningCLI:
    return LightningCLI(CifarClassifier, CIFAR10DataModule, seed_everything_default=0, args=args)


if __name__ == "__main__":
    main()
