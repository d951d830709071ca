"""The security actor: admission of submissions (ids, size limits, rate limits)."""

from ._actor import Security

__all__ = ["Security"]
