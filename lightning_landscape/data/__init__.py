"""Data for the generalization experiments: randomization tests, the swiss roll."""

from .distractor import AntiGeneralizationDataModule
from .randomization import RandomizedDataset
from .swiss_roll import SwissRollDataModule, two_spirals

__all__ = ["AntiGeneralizationDataModule", "RandomizedDataset", "SwissRollDataModule", "two_spirals"]
