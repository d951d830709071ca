"""The validator: whether a submitted workflow can run, and its plan."""

from ._actor import Validator
from ._plan import Plan, plan
from ._rules import validate_workflow

__all__ = ["Plan", "Validator", "plan", "validate_workflow"]
