"""Exceptions the core raises; the CLI turns them into one line and an exit code."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["InputError", "BundleError", "ParameterError", "TrainingDivergedError", "fill", "worded"]


class InputError(ValueError):
    """Bad usage or bad input: the user can fix it (exit code 2)."""


class ParameterError(InputError):
    """An argument outside its domain, worded with the names a library caller passed.

    ``template`` writes each parameter it names as a ``{field}`` (``"{test_size} must be
    in (0, 1), got {got}"``) and ``values`` fills the other fields. ``str()`` names the
    parameters as the Python API does (``test_size``); a front end words them its own way
    with :meth:`worded` (the CLI: ``--test-size``), so nobody reads about options they
    never passed.
    """

    def __init__(self, template: str, **values: Any) -> None:
        self.template, self.values = template, values
        super().__init__(self.worded(str))

    def worded(self, name: Callable[[str], str]) -> str:
        """The message with every parameter field replaced by ``name(field)``."""
        return worded(self.template, name, **self.values)


def worded(template: str, name: Callable[[str], str] = str, **values: Any) -> str:
    """``template`` (ParameterError's form) with ``values`` filled in and every other field,
    a parameter, written as ``name(field)``: for notes that name parameters as errors do."""
    return template.format_map(_Fields(values, name))


def fill(template: str, **values: Any) -> str:
    """``template`` with ``values`` filled in and every other field kept, so that pieces of
    one message can be joined before a ParameterError words its parameters; braces in the
    values are escaped, so a column named ``{x}`` is never taken for a field."""
    escaped = {key: _Escaped(value) for key, value in values.items()}
    return template.format_map(_Fields(escaped, lambda name: "{" + name + "}"))


class _Escaped:
    """A value whose text, once formatted, has its braces doubled."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec).replace("{", "{{").replace("}", "}}")

    def __repr__(self) -> str:
        return repr(self.value).replace("{", "{{").replace("}", "}}")

    def __str__(self) -> str:
        return str(self.value).replace("{", "{{").replace("}", "}}")


class _Fields(dict):
    """``values``, with any other field taken for a parameter name and worded by ``name``."""

    def __init__(self, values: dict[str, Any], name: Callable[[str], str]) -> None:
        super().__init__(values)
        self._name = name

    def __missing__(self, key: str) -> str:
        return self._name(key)


class BundleError(InputError):
    """A model directory that is not a valid, untouched sqnn bundle."""


class TrainingDivergedError(ParameterError):
    """The loss became NaN or infinite, usually from a learning rate that is too high; the
    message names the parameters to lower."""
