"""Batch-effect diagnostics on well profiles: how much batch is left, how much biology survives.

Every metric is computed on the same well-profile table the user analyses, so a source x
correction pair is judged on what it actually delivers. The overall score weighs batch removal,
biology kept and, when batches are held out, how well the held-out batches' wells retrieve
their biology from the training batches (``summary_scores``); each part is the mean of its
metrics' [0, 1] scores.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from debatch.core.stats import pca
from debatch.evaluate import metrics as m
from debatch.settings import (
    BATCH,
    DIAGNOSTICS,
    NEGCON,
    PLATE,
    ROLE,
    TREATMENT,
    WELL,
    feature_columns,
)

log = logging.getLogger(__name__)

BATCH_METRICS = ("batch_classifier", "silhouette_batch", "ilisi", "pcr_batch", "graph_connectivity")
BIO_METRICS = ("map", "fraction_retrieved", "clisi", "silhouette_treatment", "knn_lobo")
WEIGHTS = {"batch": 0.4, "bio": 0.6}
WEIGHTS_WITH_HOLDOUT = {"batch": 0.2, "bio": 0.3, "generalisation": 0.5}


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
    """Biology on batches never seen in training, retrieved from the batches it was trained on:
    each held-out well of a treatment (not negcon) that the training batches have, as a query
    against every training-batch well. ``knn_accuracy``: its nearest neighbours' treatment is
    its own; ``map``: mean over those wells of the AP of retrieving its treatment's
    training-batch wells. Both per well in ``per_well`` (for paired intervals between methods);
    ``score`` = mean of the chance-corrected kNN accuracy and the mAP. Held-out wells of a
    treatment the training batches lack cannot be retrieved and are left out (counted)."""
    batches = wells[BATCH].astype(str).to_numpy()
    test = np.isin(batches, [str(b) for b in holdout_batches])
    if not test.any():
        return {"reason": "no held-out batch configured (train.holdout_batches)"}
    if test.all():
        return {"reason": "every batch is held out"}
    labels = wells[TREATMENT].astype(str).to_numpy()
    treated = (wells[ROLE] != NEGCON).to_numpy()
    known = np.isin(labels, labels[~test])
    queries = test & treated & known
    if not queries.any():
        return {"reason": "no held-out treatment occurs in the training batches"}
    correct, ap = m.cross_batch_retrieval(
        values, labels, queries, ~test, params["holdout_neighbours"]
    )
    accuracy = float(correct.mean())
    chance = float(pd.Series(labels[queries]).value_counts(normalize=True).max())
    knn_score = float(np.clip((accuracy - chance) / (1 - chance), 0, 1)) if chance < 1 else 0.0
    mean_ap = float(np.nanmean(ap))
    per_well = wells.loc[queries, [PLATE, WELL, TREATMENT]].assign(correct=correct, ap=ap)
    return {
        "batches": sorted(set(batches[test])),
        "wells": int(queries.sum()),
        "unseen_treatment_wells": int((test & treated & ~known).sum()),
        "neighbours": params["holdout_neighbours"],
        "knn_accuracy": accuracy,
        "knn_chance": chance,
        "knn_score": knn_score,
        "map": mean_ap,
        "score": (knn_score + mean_ap) / 2,
        "per_well": per_well.to_dict(orient="records"),
    }


def summary_scores(batch: dict, bio: dict, holdout: dict | None = None) -> dict:
    """Batch, bio, generalisation and overall scores (means of the available [0, 1] scores).

    With held-out batches, overall = 0.2 batch + 0.3 bio + 0.5 generalisation (the held-out
    retrieval score): the only score measured on images no model was trained on weighs most,
    so a correction that mixes batches by mixing up biology ranks below one that does not.
    Without, overall = 0.4 batch + 0.6 bio (Arevalo et al. 2024).
    """

    def mean(entries):
        scores = [entry["score"] for entry in entries.values() if entry["score"] is not None]
        return float(np.mean(scores)) if scores else None

    parts = {"batch": mean(batch), "bio": mean(bio), "generalisation": (holdout or {}).get("score")}
    weights = WEIGHTS_WITH_HOLDOUT if parts["generalisation"] is not None else WEIGHTS
    missing = [name for name in weights if parts[name] is None]
    overall = None if missing else float(sum(w * parts[name] for name, w in weights.items()))
    summary = {**parts, "overall": overall, "weights": weights}
    if overall is not None:
        return summary
    summary["reason"] = (
        "batch score needs at least 2 batches" if "batch" in missing else "no bio metric"
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
        "plates": sorted(wells[PLATE].astype(str).unique()),
        "n_wells": len(wells),
        "n_batches": int(len(np.unique(batches))),
        "n_treatments": int(len(np.unique(labels))),
        "n_features": values.shape[1],
        "pca_explained_variance": explained.tolist(),
        "batch": batch,
        "bio": bio,
        "per_treatment": [] if per_treatment is None else per_treatment.to_dict(orient="records"),
        "holdout": holdout_scores(wells, values, holdout_batches, params),
    }
    metrics["scores"] = summary_scores(batch, bio, metrics["holdout"])
    if truth is not None:
        metrics["truth"] = truth_scores(per_treatment, truth)
    log.info("diagnostics: scores %s", metrics["scores"])
    return metrics
