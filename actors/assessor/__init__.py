"""The assessor: scores every task outcome from evidence, as five scores, their weighted mean and their reasons."""

from ._actor import Assessor
from ._scoring import Scores, score

__all__ = ["Assessor", "Scores", "score"]
