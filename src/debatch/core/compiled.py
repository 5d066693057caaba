"""Packages whose numba functions compile without numba's on-disk cache, imported so that they
use it.

umap-learn and cellpose compile some functions without the cache, several as they are imported
(their signatures given, so they compile as they are decorated: cellpose's ``dynamics`` for
seconds), others at their first call. Every UMAP or cellpose job, a fresh process, paid that
compilation again before its work. Turning the cache on after the import comes too late for the
first kind, so numba's decorators default to ``cache=True`` while such a package is imported;
compiling is then a one-off per installation, and the code compiled is the same.

umap-learn's import also compiled pynndescent's functions that are declared with signatures,
most of the first UMAP job's time in a fresh environment (a new clone's demo), though a UMAP of
wells calls few of them, and none below 4,096 wells. Modules named in ``compile_when_called``
drop those signatures, so each function compiles at its first call, for the types that call
passes. That is the same code only where the call passes the declared types, which
tests/test_compiled.py checks for the modules umap-learn's import leaves so
(debatch.report.figures.UMAP_COMPILED_WHEN_CALLED); a module whose functions are called with
other types keeps its signatures.
"""

from __future__ import annotations

import functools
import importlib
import sys
from types import ModuleType


def _is_signature(argument) -> bool:
    """Whether a decorator's first argument declares signatures (numba's forms: a string, a
    signature or a list of them) rather than being the function."""
    from numba.core.sigutils import is_signature

    return isinstance(argument, list) or is_signature(argument)


def import_with_numba_cache(name: str, compile_when_called: tuple[str, ...] = ()) -> ModuleType:
    """``importlib.import_module(name)``, numba's ``njit``/``jit`` defaulting to ``cache=True``
    for the functions of every module imported for the first time meanwhile (a decorator given
    ``cache`` keeps its own), and dropping the signatures that the modules named in
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
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if args and _is_signature(args[0]) and caller in compile_when_called:
                args = args[1:]  # compile at the first call instead
            return decorator(*args, **kwargs)

        return with_cache

    numba.njit, numba.jit = map(cached, decorators)
    try:
        return importlib.import_module(name)
    finally:
        numba.njit, numba.jit = decorators
