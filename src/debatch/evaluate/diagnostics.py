"""Batch-effect diagnostics on well profiles: how much batch is left, how much biology survives.

Every metric is computed on the same well-profile table the user analyses, so a method x
correction pair is judged on what it actually delivers. The overall score is
0.4 x batch + 0.6 x bio (Arevalo et al. 2024), each the mean of its metrics' [0, 1] scores.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from debatch.core.stats import pca
from debatch.evaluate import metrics as m
from debatch.settings import BATCH, DIAGNOSTICS, TREATMENT, feature_columns

log = logging.getLogger(__name__)

BATCH_METRICS = ("batch_classifier", "silhouette_batch", "ilisi", "pcr_batch", "graph_connectivity")
BIO_METRICS = ("map", "fraction_retrieved", "clisi", "silhouette_treatment", "knn_lobo")
BATCH_WEIGHT, BIO_WEIGHT = 0.4, 0.6


def read_truth(paths) -> pd.DataFrame:
    """Ground-truth activity per treatment from the demo's truth/treatments.tsv files."""
    tables = [pd.read_csv(path, sep="\t")[["treatment", "active"]] for path in paths]
    truth = pd.concat(tables).drop_duplicates()
    if truth["treatment"].duplicated().any():
        raise ValueError(f"ground truth files disagree on treatment activity: {list(paths)}")
    return truth


def truth_scores(per_treatment: pd.DataFrame | None, truth: pd.DataFrame) -> dict:
    """Calls (retrieved by mAP = active) against the demo's ground truth.

    Sensitivity: truly active treatments called active; specificity: truly inactive ones
    called inactive; ``auc``: how well the mAP ranks active above inactive (threshold-free).
    """
    if per_treatment is None or per_treatment.empty:
        return {"reason": "no treatment could be scored by mAP"}
    calls = per_treatment.merge(truth, left_on=TREATMENT, right_on="treatment", how="inner")
    active, called = (
        calls["active"].astype(bool).to_numpy(),
        calls["below_corrected_p"].to_numpy(bool),
    )
    sensitivity = float(called[active].mean()) if active.any() else None
    specificity = float((~called[~active]).mean()) if (~active).any() else None
    auc = None
    if active.any() and (~active).any():
        scores = calls["mean_average_precision"].to_numpy()
        pairs = scores[active][:, None] - scores[~active][None, :]
        auc = float(((pairs > 0) + 0.5 * (pairs == 0)).mean())
    balanced = None if None in (sensitivity, specificity) else (sensitivity + specificity) / 2
    return {
        "sensitivity": sensitivity,
        "specificity": specificity,
        "balanced_accuracy": balanced,
        "auc": auc,
        "n_active": int(active.sum()),
        "n_inactive": int((~active).sum()),
        "calls": {
            row[TREATMENT]: {
                "active": bool(row["active"]),
                "called_active": bool(row["below_corrected_p"]),
                "map": float(row["mean_average_precision"]),
            }
            for _, row in calls.iterrows()
        },
    }


def holdout_scores(wells: pd.DataFrame, values: np.ndarray, holdout_batches, params: dict) -> dict:
    """Biology on batches never seen in training: kNN treatment accuracy from the training
    batches' wells, and mAP computed within the held-out wells alone."""
    batches = wells[BATCH].astype(str).to_numpy()
    test = np.isin(batches, [str(b) for b in holdout_batches])
    if not test.any():
        return {"reason": "no held-out batch configured (train.holdout_batches)"}
    if test.all():
        return {"reason": "every batch is held out"}
    labels = wells[TREATMENT].astype(str).to_numpy()
    accuracy = m.knn_accuracy(values, labels, ~test, test, params["knn_neighbours"])
    mean_ap, _, _ = m.map_activity(
        wells[test].reset_index(drop=True),
        values[test],
        params["map_null_size"],
        params["map_threshold"],
        params["seed"],
    )
    return {
        "batches": sorted(set(batches[test])),
        "wells": int(test.sum()),
        "knn_accuracy": accuracy,
        "map": mean_ap["value"],
    }


def summary_scores(batch: dict, bio: dict) -> dict:
    """Batch, bio and overall (0.4 batch + 0.6 bio) scores: means of the available [0, 1] scores."""

    def mean(entries):
        scores = [entry["score"] for entry in entries.values() if entry["score"] is not None]
        return float(np.mean(scores)) if scores else None

    batch_score, bio_score = mean(batch), mean(bio)
    overall = (
        None
        if None in (batch_score, bio_score)
        else BATCH_WEIGHT * batch_score + BIO_WEIGHT * bio_score
    )
    summary = {"batch": batch_score, "bio": bio_score, "overall": overall}
    if overall is None:
        summary["reason"] = (
            "batch score needs at least 2 batches" if batch_score is None else "no bio metric"
        )
    return summary


def compute_metrics(
    wells: pd.DataFrame,
    params: dict | None = None,
    holdout_batches=(),
    truth: pd.DataFrame | None = None,
) -> dict:
    """Every metric of one method x correction's well profiles (JSON-ready)."""
    params = DIAGNOSTICS.merge(params)
    values = wells[feature_columns(wells.columns)].to_numpy(np.float64)
    batches = wells[BATCH].astype(str).to_numpy()
    labels = wells[TREATMENT].astype(str).to_numpy()
    batch = {
        "batch_classifier": m.batch_classifier(
            values, batches, params["seed"], params["max_folds"]
        ),
        "silhouette_batch": m.silhouette_batch(values, batches, labels),
        "ilisi": m.ilisi(values, batches, params["lisi_perplexity"]),
        "pcr_batch": m.pcr_batch(values, batches, params["pcr_components"]),
        "graph_connectivity": m.graph_connectivity(values, labels, batches, params["neighbours"]),
    }
    mean_ap, retrieved, per_treatment = m.map_activity(
        wells.reset_index(drop=True),
        values,
        params["map_null_size"],
        params["map_threshold"],
        params["seed"],
    )
    bio = {
        "map": mean_ap,
        "fraction_retrieved": retrieved,
        "clisi": m.clisi(values, labels, params["lisi_perplexity"]),
        "silhouette_treatment": m.silhouette_treatment(values, labels),
        "knn_lobo": m.knn_leave_one_batch_out(values, labels, batches, params["knn_neighbours"]),
    }
    _, explained = pca(values)
    metrics = {
        "n_wells": len(wells),
        "n_batches": int(len(np.unique(batches))),
        "n_treatments": int(len(np.unique(labels))),
        "n_features": values.shape[1],
        "pca_explained_variance": explained.tolist(),
        "batch": batch,
        "bio": bio,
        "scores": summary_scores(batch, bio),
        "per_treatment": [] if per_treatment is None else per_treatment.to_dict(orient="records"),
        "holdout": holdout_scores(wells, values, holdout_batches, params),
    }
    if truth is not None:
        metrics["truth"] = truth_scores(per_treatment, truth)
    log.info("diagnostics: scores %s", metrics["scores"])
    return metrics
