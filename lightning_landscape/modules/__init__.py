"""LightningModules for the generalization experiments."""

from .anti_generalization import AntiGeneralizationModule

__all__ = ["AntiGeneralizationModule"]
