"""core.compiled: umap-learn and cellpose imported so that every numba function they compile is
kept in numba's on-disk cache (each of their jobs compiled seconds of them again before)."""

import subprocess
import sys

import pytest

# Run in a fresh process: a package imported earlier in the test session (scanpy imports umap)
# would be returned as it is.
CHECK = """
import sys
import numba
from numba.core.caching import NullCache
from debatch.core.compiled import import_with_numba_cache

decorators = numba.njit, numba.jit
import_with_numba_cache(sys.argv[1])
assert (numba.njit, numba.jit) == decorators, "numba's decorators left patched"
uncached = [
    f"{module.__name__}.{name}"
    for module in list(sys.modules.values())
    if module.__name__.split(".")[0] == sys.argv[1].split(".")[0]
    for name, function in vars(module).items()
    if isinstance(function, numba.core.registry.CPUDispatcher)
    and function.py_func.__module__ == module.__name__
    and isinstance(function._cache, NullCache)
]
print(len(uncached), uncached[:5])
"""


@pytest.mark.parametrize("package", ["umap", "cellpose.models"])
def test_every_numba_function_of_the_package_is_cached_on_disk(package):
    result = subprocess.run(
        [sys.executable, "-c", CHECK, package], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("0 "), result.stdout
