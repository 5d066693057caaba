"""Packages whose numba functions compile without numba's on-disk cache, imported so that they
use it.

umap-learn and cellpose compile some functions without the cache, several as they are imported
(their signatures given, so they compile as they are decorated: cellpose's ``dynamics`` for
seconds), others at their first call. Every UMAP or cellpose job, a fresh process, paid that
compilation again before its work. Turning the cache on after the import comes too late for the
first kind, so numba's decorators default to ``cache=True`` while such a package is imported;
compiling is then a one-off per installation, and the code compiled is the same.
"""

from __future__ import annotations

import functools
import importlib
import sys
from types import ModuleType


def import_with_numba_cache(name: str) -> ModuleType:
    """``importlib.import_module(name)``, numba's ``njit``/``jit`` defaulting to ``cache=True``
    for the functions of every module imported for the first time meanwhile (a decorator given
    ``cache`` keeps its own). A module imported before is returned as it is (once complete,
    should another thread be importing it)."""
    if name in sys.modules:
        return importlib.import_module(name)
    import numba

    decorators = numba.njit, numba.jit

    def cached(decorator):
        @functools.wraps(decorator)
        def with_cache(*args, **kwargs):
            kwargs.setdefault("cache", True)
            return decorator(*args, **kwargs)

        return with_cache

    numba.njit, numba.jit = map(cached, decorators)
    try:
        return importlib.import_module(name)
    finally:
        numba.njit, numba.jit = decorators
