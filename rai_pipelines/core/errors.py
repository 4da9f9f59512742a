"""Errors that name what was wrong and where, so an operator can fix the input."""


class RaiError(Exception):
    """Base class for errors this package raises on bad input or a failed outside system."""


class BadInputError(RaiError, ValueError):
    """Input that cannot be used: the message names the file, row or field."""


class PolicyError(RaiError):
    """A policy bundle that cannot be loaded or evaluated."""


class GitOpsError(RaiError):
    """A GitOps repository operation that failed (clone, render, push)."""
