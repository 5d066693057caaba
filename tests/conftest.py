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


def docs_tool():
    """tools/docs.py as a module (it is a script, not part of the library)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_tool", REPO / "tools" / "docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
