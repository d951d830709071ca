"""The assessor: scores every output a model wrote from evidence, as five scores, their weighted
mean and their reasons (the rules are `actors._quality`'s)."""

from ._actor import Assessor

__all__ = ["Assessor"]
