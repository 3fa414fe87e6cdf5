"""Exceptions the core raises; the CLI turns them into one line and an exit code."""

from __future__ import annotations

__all__ = ["InputError", "BundleError"]


class InputError(ValueError):
    """Bad usage or bad input: the user can fix it (exit code 2)."""


class BundleError(InputError):
    """A model directory that is not a valid, untouched sqnn bundle."""


class TrainingDivergedError(InputError):
    """The loss became NaN or infinite, usually from a learning rate that is too high."""
