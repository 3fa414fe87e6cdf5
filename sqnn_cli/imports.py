"""Modules a command's libraries import but the command may never use, loaded when first used.

scikit-learn imports ``scipy.stats`` when ``sklearn.base`` is imported (for a helper it
calls only in a few estimators), and that import is about 0.4 s of CPU, some 5 % of a
whole ``sqnn train`` on Adult, which never calls it. ``defer("scipy.stats")`` puts a
stand-in in ``sys.modules``: ``import scipy.stats`` then binds the stand-in, and the
first attribute read from it (``scipy.stats.rankdata``, ``from scipy.stats import t``)
imports the real module and is answered from it, as is every later one.

Only the console script defers (cli.main): a program that imports sqnn_cli as a library
gets its modules as Python imports them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

__all__ = ["defer"]


class _Deferred(types.ModuleType):
    """Stands in for a module until an attribute of it is read."""

    def __getattr__(self, name: str) -> object:
        # Only attributes the stand-in lacks arrive here: the first one imports the module.
        real = sys.modules.get(self.__name__)
        if real is None or real is self:
            sys.modules.pop(self.__name__, None)
            real = importlib.import_module(self.__name__)
        return getattr(real, name)


def defer(name: str) -> None:
    """Put a stand-in for module ``name`` in ``sys.modules``, unless it is imported already
    or cannot be found (then its own import reports that, when it happens)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    stand_in = _Deferred(name)
    # inspect.getmodule, which torch calls as it registers its operators, reads every
    # loaded module's __file__: it must not import the module. __path__ is left out, so
    # that importing a submodule (scipy.stats._stats_py) first imports the module, whose
    # own imports may need it whole; the import system then runs that one submodule a
    # second time. Nothing that sqnn's commands import does that.
    stand_in.__spec__ = spec
    stand_in.__file__ = spec.origin
    sys.modules[name] = stand_in
