"""core.compiled: umap-learn and cellpose imported so that every numba function they compile is
kept in numba's on-disk cache (each of their jobs compiled seconds of them again before)."""

import subprocess
import sys

import numpy as np
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


# Imports umap-learn lazily (as the workflow does) or with pynndescent's signatures kept, and
# saves a UMAP of a small table: the maps must be equal, and lazily nothing of pynndescent's
# may compile as it is imported.
UMAP_MAP = """
import sys
import numba
import numpy as np
from debatch.core.compiled import import_with_numba_cache
from debatch.report.figures import import_umap, umap_embedding

if sys.argv[1] == "lazy":
    import_umap()
    import pynndescent.distances as distances
    compiled = [
        name
        for name, function in vars(distances).items()
        if isinstance(function, numba.core.registry.CPUDispatcher) and function.signatures
    ]
    assert not compiled, f"compiled as imported: {compiled[:5]}"
else:
    import_with_numba_cache("umap")
np.save(sys.argv[2], umap_embedding(np.random.default_rng(0).normal(size=(60, 8)), seed=0))
"""


def test_pynndescent_compiled_at_first_call_leaves_the_umap_unchanged(tmp_path):
    maps = {}
    for mode in ("lazy", "as_declared"):
        path = tmp_path / f"{mode}.npy"
        subprocess.run([sys.executable, "-c", UMAP_MAP, mode, str(path)], check=True)
        maps[mode] = np.load(path)
    np.testing.assert_array_equal(maps["lazy"], maps["as_declared"])
