"""Outcome checks: whether a task's output meets its `expect` (`check_outcome`, applied by the
executor to every attempt's output), and the rules the validator reads to refuse an `expect`
no check could apply (`LANGUAGES`, `schema_problem`, `test_names`), and ruff, which the lint check
and the assessor's lint evidence share. docs/quality.md, "Outcome checks"."""

from ._code import LANGUAGES
from ._doc import schema_problem
from ._expect import check_outcome, failure_line
from ._ruff import Finding, RuffError, ruff, ruff_binary, ruff_blocking
from ._tests import test_names

__all__ = ["LANGUAGES", "Finding", "RuffError", "check_outcome", "failure_line", "ruff", "ruff_binary", "ruff_blocking",
           "schema_problem", "test_names"]
