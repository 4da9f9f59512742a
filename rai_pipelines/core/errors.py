"""Errors that name what was wrong and where, so an operator can fix the input."""


class RaiError(Exception):
    """Base class for errors this package raises on bad input or a failed outside system."""


class BadInputError(RaiError, ValueError):
    """Input that cannot be used: the message names the file, row or field."""


class PolicyError(RaiError):
    """A policy bundle that cannot be loaded or evaluated."""


class GitOpsError(RaiError):
    """A GitOps repository operation that failed (clone, render, push)."""


def validation_problems(exc) -> str:
    """A pydantic ValidationError as `field.path: message; ...`, for errors that name the field."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors(include_url=False)
    )
