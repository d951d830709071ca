"""The assessor: scores every checked task outcome, as five scores and their weighted mean."""

from ._actor import Assessor
from ._scoring import Scores, score

__all__ = ["Assessor", "Scores", "score"]
