"""core.compiled: umap-learn and cellpose imported so that every numba function they compile is
kept in numba's on-disk cache (each of their jobs compiled seconds of them again before); and
debatch's own compiled functions compiled once each for a site, not once per argument type."""

import json
import os
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


# umap-learn imported as the workflow does (import_umap: some of pynndescent's functions compile
# at their first call) or with every signature compiled as declared. Each process saves the
# neighbours of a table of 4,200 rows with many ties (umap-learn's pynndescent path, from 4,096
# rows), a UMAP of a small table (the precomputed path) and, per function of the modules left
# to their first call, the signatures compiled: those compiled at a call must be declared ones
# (the same code), and the results equal.
UMAP_RUN = """
import importlib, json, sys
import numba
import numpy as np
from numpy.random import RandomState
from debatch.core.compiled import import_with_numba_cache
from debatch.report.figures import UMAP_COMPILED_WHEN_CALLED, import_umap, umap_embedding


def functions():  # (name, dispatcher) of each numba function defined in those modules
    for module in UMAP_COMPILED_WHEN_CALLED:
        for name, function in vars(importlib.import_module(module)).items():
            if isinstance(function, numba.core.registry.CPUDispatcher):
                if function.py_func.__module__ == module:
                    yield f"{module}.{name}", function


if sys.argv[1] == "as_imported":
    import_umap()
    assert not [name for name, function in functions() if function.signatures], "compiled"
else:
    import_with_numba_cache("umap")
from umap.umap_ import nearest_neighbors

rng = np.random.default_rng(0)
ties = np.repeat(rng.normal(size=(700, 10)), 6, axis=0)
neighbours, _, _ = nearest_neighbors(ties, 15, "cosine", {}, False, RandomState(0), n_jobs=1)
small = umap_embedding(rng.normal(size=(60, 8)), seed=0)
np.savez(sys.argv[2], neighbours=neighbours, small=small)
signatures = {name: [str(s) for s in f.nopython_signatures] for name, f in functions()}
print(json.dumps(signatures))
"""


@pytest.mark.slow  # pynndescent's search compiles in every process (numba cannot cache it)
def test_pynndescent_compiled_at_first_call_runs_the_declared_code(tmp_path):
    runs = {}
    for mode in ("as_imported", "as_declared"):
        path = tmp_path / f"{mode}.npz"
        result = subprocess.run(
            [sys.executable, "-c", UMAP_RUN, mode, str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-2000:]
        runs[mode] = json.loads(result.stdout.splitlines()[-1]), np.load(path)
    called, called_results = runs["as_imported"]
    declared, declared_results = runs["as_declared"]
    assert any(called.values()), "no function of those modules ran: the test tests nothing"
    for name, signatures in called.items():
        assert set(signatures) <= set(declared[name]), name
    for key in ("neighbours", "small"):
        np.testing.assert_array_equal(called_results[key], declared_results[key])


ONE_SITE = """
import pathlib
import sys

import numba
import numpy as np
import tifffile
from numba.core.types import Literal

from debatch.demo.design import CHANNELS
from debatch.demo.plate import generate_plate
from debatch.features.site import measure_site, site_images
from debatch.segment.propagate import find_site
from debatch.segment.shards import stored_labels
from debatch.settings import Channels

folder = pathlib.Path(sys.argv[1])
one_site = {"rows": 1, "cols": 1, "sites": 1, "n_treatments": 0, "n_inactive": 0}
generate_plate(folder, "P1", "b1", {**one_site, "replicates": 1})
raw = {
    name: tifffile.imread(folder / "images" / f"r01c01f01p01-ch{i}sk1fk1fl1.tiff")
    for i, name in enumerate(CHANNELS, start=1)
}
images = {name: image.astype(np.float32) for name, image in raw.items()}
nuclei, cells, _ = find_site(images, Channels(tuple(raw), "DNA", "AGP"), None, 1 / 65535)
assert nuclei.max() > 5, nuclei.max()
# as the features job gets them: stored as the segment stage keeps them (uint16 here), and the
# column names measured on feature_names' own small label image
nuclei, cells = (stored_labels(labels, nuclei.max()) for labels in (nuclei, cells))
assert nuclei.dtype == np.uint16, nuclei.dtype
measure_site(nuclei, cells, site_images(raw))
# cp_measure's kernels too, which debatch calls with its own arrays; but for the copy that
# cp_measure compiles itself (its haralick_object passes _haralick_13 a literal 0): there,
# only the copies for non-literal arguments count
ITS_OWN_LITERAL = {"cp_measure.core.numba._texture._haralick_13"}


def copies(name, function):
    signatures = function.signatures
    if name in ITS_OWN_LITERAL:
        signatures = [s for s in signatures if not any(isinstance(a, Literal) for a in s)]
    return signatures


twice = [
    f"{module_name}.{name}: {function.signatures}"
    for module_name, module in list(sys.modules.items())
    if module_name.startswith(("debatch.", "cp_measure."))
    for name, function in vars(module).items()
    if isinstance(function, numba.core.registry.CPUDispatcher)
    and function.py_func.__module__ == module_name
    and len(copies(f"{module_name}.{name}", function)) > 1
]
print(twice)
"""


@pytest.mark.slow  # compiles every function of segmentation and features (a fresh cache)
def test_a_sites_compiled_functions_compile_once_each(tmp_path):
    """A literal argument (a 0 passed as such) or a second label type makes numba compile a
    second copy of a function: seconds more in the first segment and features jobs of a new
    install. In a fresh cache, as there: functions loaded from the cache do not list the copies
    compiled for the compiled functions they call."""
    result = subprocess.run(
        [sys.executable, "-c", ONE_SITE, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", result.stdout
