"""Shared fixtures: paths to the repository and to the real images in ../shared/data/real."""

from pathlib import Path

import numpy as np
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


# held-out wells of the metrics entries built below (tests of compare and verdict)
WELLS = [(f"P{p}", f"A{w:02d}") for p in (7, 8) for w in range(1, 41)]


def metrics_entry(method, seed, correction, accuracy, ap, overall, rng, **extra):
    """A metrics entry whose held-out wells have the given kNN accuracy and mean AP; ``extra``:
    batch_acc, replicating, activity (mean per-treatment mAP)."""
    correct = rng.random(len(WELLS)) < accuracy
    aps = np.clip(rng.normal(ap, 0.1, len(WELLS)), 0, 1)
    per_well = [
        {
            "Metadata_Plate": p,
            "Metadata_Well": w,
            "Metadata_Treatment": "t",
            "correct": bool(c),
            "ap": float(a),
        }
        for (p, w), c, a in zip(WELLS, correct, aps)
    ]
    return {
        "method": method,
        "seed": seed,
        "correction": correction,
        "source": f"{method}/seed{seed}",
        "scores": {
            "overall": overall,
            "activity": extra.get("activity", 0.5),
            "batch": 0.5,
            "bio": 0.5,
            "generalisation": ((accuracy - 0.1) / 0.9 + ap) / 2,
            "matching": ((accuracy - 0.1) / 0.9 + ap) / 2,
        },
        "n_wells": 192,
        "batch": {"batch_classifier": {"value": extra.get("batch_acc", 0.5), "chance": 0.25}},
        "bio": {"map": {"value": extra.get("activity", 0.5)}},
        "replicates": {"value": extra.get("replicating", 0.6)},
        "holdout": {"per_well": per_well, "knn_chance": 0.1, "knn_accuracy": accuracy, "map": ap},
    }
