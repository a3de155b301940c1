"""The one error type of the training package."""

from __future__ import annotations

__all__ = ["TrainingError"]


class TrainingError(RuntimeError):
    """A problem with the arguments, the data or the run folder; the message says how to fix it."""
