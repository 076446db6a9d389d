"""Backbone factory: timm models by name and our own 48x48 CNNs, each behind one classifier head."""

from ferops.models.factory import FERNet, build_model
from ferops.models.head import ClassifierHead

__all__ = ["ClassifierHead", "FERNet", "build_model"]
