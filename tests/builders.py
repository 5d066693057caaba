"""Builders of small inputs shared by several test modules (tests never import each other)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# train_model params of a tiny, fast CNN
TINY_TRAIN = {
    "epochs": 2,
    "batch_size": 32,
    "lr": 1e-2,
    "lr_schedule_epochs": 4,
    "width": 8,
    "depth": 1,
    "embedding_dim": 16,
    "num_threads": 1,
}


def write_plates(
    directory,
    n=80,
    size=16,
    batches=("B1", "B2", "B3"),
    treatments=("DMSO", "A", "B"),
    seed=0,
    nan_batch=None,
):
    """One plate per batch, one well per treatment; treatment k brightens channel 1 by 0.15 * k,
    so it is learnable.

    Batches also shift every channel a little (a batch effect). ``nan_batch``'s crops are all NaN.
    Returns [(npy path, parquet path), ...] as train_model expects.
    """
    rng = np.random.default_rng(seed)
    plates = []
    for b, batch in enumerate(batches):
        treatment = np.array(treatments)[rng.integers(0, len(treatments), n)]
        crops = rng.random((n, 5, size, size), dtype=np.float32) * 0.2 + 0.05 * b
        crops[:, 1] += 0.15 * np.searchsorted(sorted(treatments), treatment)[:, None, None]
        if batch == nan_batch:
            crops[:] = np.nan
        npy, parquet = directory / f"P{b}.npy", directory / f"P{b}.parquet"
        np.save(npy, crops.astype(np.float16))
        pd.DataFrame(
            {
                "Metadata_Plate": f"P{b}",
                "Metadata_Batch": batch,
                "Metadata_Well": [f"A{sorted(treatments).index(t) + 1:02d}" for t in treatment],
                "Metadata_Site": 1,
                "Metadata_ObjectNumber": np.arange(1, n + 1),
                "Metadata_Treatment": treatment,
                "Metadata_Role": np.where(treatment == "DMSO", "negcon", "treatment"),
                "Cells_AreaShape_Area": rng.random(n),
            }
        ).to_parquet(parquet)
        plates.append((str(npy), str(parquet)))
    return plates


def wells_table(batch_shift=0.0, effect=3.0, n_batches=3, seed=0):
    """3 batches x (DMSO + 5 compounds) x 4 replicate wells; compound k moves feature k by
    ``effect``, batch b moves feature 6 + b by ``batch_shift`` (its own direction, as cosine sees
    it)."""
    rng = np.random.default_rng(seed)
    rows = []
    for batch in range(n_batches):
        for treatment in range(6):
            for replicate in range(4):
                values = rng.normal(size=9) * 0.3
                values[treatment] += effect * (treatment > 0)
                values[6 + batch] += batch_shift
                rows.append(
                    {
                        "Metadata_Plate": f"P{batch}",
                        "Metadata_Batch": f"b{batch}",
                        "Metadata_Well": f"A{treatment * 4 + replicate + 1:02d}",
                        "Metadata_Treatment": "DMSO" if treatment == 0 else f"t{treatment}",
                        "Metadata_Role": "negcon" if treatment == 0 else "treatment",
                        **{f"emb_{i:03d}": v for i, v in enumerate(values)},
                    }
                )
    return pd.DataFrame(rows)


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
        "source": f"{method}_seed{seed}",
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
