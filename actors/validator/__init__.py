"""The validator: whether a submitted workflow can run, and its plan."""

from ._plan import Plan, plan
from ._rules import validate_workflow

__all__ = ["Plan", "plan", "validate_workflow"]
