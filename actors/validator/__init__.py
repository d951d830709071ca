"""The validator: whether a submitted workflow can run, its plan, and whether an outcome meets its spec."""

from ._outcome import check_outcome
from ._plan import Plan, plan
from ._rules import validate_workflow

__all__ = ["Plan", "check_outcome", "plan", "validate_workflow"]
