"""LightningModules (and a plain MLP) for the generalization experiments."""

from .anti_generalization import AntiGeneralizationModule
from .mlp import MLP

__all__ = ["MLP", "AntiGeneralizationModule"]
