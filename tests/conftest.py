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
