"""Shared fixtures: paths to the repository and to the real images in ../shared/data/real; how
the suite shares the machine between pytest-xdist workers (``make test`` runs two)."""

import os
from pathlib import Path

import pytest

from debatch.core.parallel import usable_cores

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"
# Modules reading the session's tiny demo run: one pytest-xdist worker runs them all, so the run
# is built once.
SHARE_TINY_DEMO_RUN = ("tests/test_workflow_demo.py", "tests/test_workflow_frozen.py")
TEST_CORES = 2  # the most a test's Snakemake run uses: what the runs were written and timed for


def cores_per_worker() -> int:
    """Cores a test's Snakemake runs may use (and, under pytest-xdist, torch and BLAS in the
    worker): TEST_CORES, or fewer where the machine's cores shared out between the workers are
    fewer. Two workers each running 2-core jobs on 2 cores spent more CPU time (threads
    waiting on each other) than the same suite run serially."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(TEST_CORES, usable_cores() // workers))


CORES = cores_per_worker()
# Snakemake's SLURM plugin asks `scontrol show config` at every start; with SLURM installed but
# its controller down, scontrol waits for SLURM's MessageTimeout (10 s by default) each time.
# Local runs point scontrol at a configuration without a controller (it gives up at once);
# test_slurm.py unsets it.
SLURM_UNREACHABLE = REPO / "tests" / "slurm_unreachable.conf"
os.environ.setdefault("SLURM_CONF", str(SLURM_UNREACHABLE))
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # jobs' own thread settings still apply
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, str(CORES))


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real images not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def tiny_demo_run(tmp_path_factory):
    """The tiny screen run to the end once per session: (workdir, config). Tests read it and
    may run Snakemake on it again only in ways that change nothing (dry runs, --report)."""
    from workflow_helpers import TINY_DEMO_RUN, snakemake, tiny_workdir

    workdir = tmp_path_factory.mktemp("demo")
    config = tiny_workdir(workdir, TINY_DEMO_RUN)
    snakemake(workdir, config)
    return workdir, config


def docs_tool():
    """tools/docs.py as a module (it is a script, not part of the library)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_tool", REPO / "tools" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_collection_modifyitems(items):
    """Modules with slow end-to-end tests first (each keeps its order): pytest-xdist hands a
    worker whole modules in this order, so the long runs start early and the short unit tests
    fill in at the end, instead of one long run finishing alone."""
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs pytest-xdist workers with ``--dist loadfile --no-loadscope-reorder``:
    each module's tests on one worker, so its fixtures (most are whole Snakemake runs) are built
    once, modules in collection order, and the modules of SHARE_TINY_DEMO_RUN on one worker
    together. Other modes are xdist's own. (``--dist loadgroup`` would be the marked way, but
    pytest-xdist 3.8 cannot group under pytest 9.2: it rewrites a node id pytest no longer
    reads.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByModule(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return "tiny_demo_run" if module in SHARE_TINY_DEMO_RUN else module

    return ByModule(config, log)
