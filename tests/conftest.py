"""Shared fixtures: paths to the repository and to the real images in ../shared/data/real."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"


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
