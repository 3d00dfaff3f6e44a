"""LightningCLI entry point: a good or bad minimum on the swiss roll, with the monitors.

    python example_projects/anti_generalization/main.py fit \
        --config example_projects/anti_generalization/swiss_roll.yaml
    python example_projects/anti_generalization/main.py fit \
        --config example_projects/anti_generalization/swiss_roll.yaml --model.beta 0.0
"""

from lightning.pytorch.cli import LightningCLI

from lightning_landscape import AntiGeneralizationModule
from lightning_landscape.data import AntiGeneralizationDataModule


def main(args=None) -> LightningCLI:
    return LightningCLI(
        AntiGeneralizationModule, AntiGeneralizationDataModule, seed_everything_default=0, args=args
    )


if __name__ == "__main__":
    main()
