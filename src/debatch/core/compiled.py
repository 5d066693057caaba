"""Packages whose numba functions compile without numba's on-disk cache, imported so that they
use it.

umap-learn and cellpose compile some functions without the cache, several as they are imported
(their signatures given, so they compile as they are decorated: cellpose's ``dynamics`` for
seconds), others at their first call. Every UMAP or cellpose job, a fresh process, paid that
compilation again before its work. Turning the cache on after the import comes too late for the
first kind, so numba's decorators default to ``cache=True`` while such a package is imported;
compiling is then a one-off per installation, and the code compiled is the same.

umap-learn's import also compiled pynndescent's distance functions, which are decorated with
their signatures: most of the first UMAP job's time in a fresh environment (a new clone's
demo), though a UMAP of fewer than 4,096 wells never calls them. Imported with
those signatures dropped (``compile_when_called``), each compiles at its first call instead,
for the types that call passes, which are the declared ones: pynndescent converts its data to
float32 first (tests/test_compiled.py checks that the maps are unchanged).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from types import ModuleType


def import_with_numba_cache(name: str, compile_when_called: tuple[str, ...] = ()) -> ModuleType:
    """``importlib.import_module(name)``, numba's ``njit``/``jit`` defaulting to ``cache=True``
    for the functions of every module imported for the first time meanwhile (a decorator given
    ``cache`` keeps its own), and dropping the signatures that the modules of the packages in
    ``compile_when_called`` decorate with. A module imported before is returned as it is (once
    complete, should another thread be importing it)."""
    if name in sys.modules:
        return importlib.import_module(name)
    import numba

    decorators = numba.njit, numba.jit

    def cached(decorator):
        @functools.wraps(decorator)
        def with_cache(*args, **kwargs):
            kwargs.setdefault("cache", True)
            caller = sys._getframe(1).f_globals.get("__name__", "").split(".")[0]
            if args and not inspect.isfunction(args[0]) and caller in compile_when_called:
                args = args[1:]  # a signature: compile at the first call instead
            return decorator(*args, **kwargs)

        return with_cache

    numba.njit, numba.jit = map(cached, decorators)
    try:
        return importlib.import_module(name)
    finally:
        numba.njit, numba.jit = decorators
