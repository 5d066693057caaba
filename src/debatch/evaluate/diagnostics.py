"""Batch-effect diagnostics on well profiles: how much batch is left, how much biology survives.

Every metric is computed on the same well-profile table the user analyses, so a source x
correction pair is judged on what it actually delivers: how much batch is left, how much biology
is kept, and the two jobs a screen is run for, calling active treatments and matching them
across batches, whose mean is the overall score that ranks rows (``summary_scores``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from debatch.core.stats import pca
from debatch.evaluate import metrics as m
from debatch.evaluate.truth import truth_scores
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


@dataclass
class ScoredWells:
    """One well-profile table as the metrics read it: features, batch and treatment per well,
    and the diagnostics settings."""

    table: pd.DataFrame
    values: np.ndarray
    batches: np.ndarray
    labels: np.ndarray
    params: dict

    @cached_property
    def activity(self) -> tuple:
        """(mAP entry, fraction-retrieved entry, per-treatment table): one copairs run behind
        two metrics."""
        return m.map_activity(
            self.table.reset_index(drop=True),
            self.values,
            self.params["map_null_size"],
            self.params["map_threshold"],
            self.params["seed"],
        )


# Name -> metric of ScoredWells -> {"value": ..., "score": [0, 1] or None, ...}: how much batch
# is left (BATCH_METRICS) and how much biology is kept (BIO_METRICS), in the order the report
# shows them; each section's score is the mean of its metrics' (docs/extending.md: a metric).
BATCH_METRICS = {
    "batch_classifier": lambda w: m.batch_classifier(
        w.values, w.batches, w.params["seed"], w.params["max_folds"]
    ),
    "silhouette_batch": lambda w: m.silhouette_batch(w.values, w.batches, w.labels),
    "ilisi": lambda w: m.ilisi(w.values, w.batches, w.params["lisi_perplexity"]),
    "pcr_batch": lambda w: m.pcr_batch(w.values, w.batches, w.params["pcr_components"]),
    "graph_connectivity": lambda w: m.graph_connectivity(
        w.values, w.labels, w.batches, w.params["neighbours"]
    ),
}
BIO_METRICS = {
    "map": lambda w: w.activity[0],
    "fraction_retrieved": lambda w: w.activity[1],
    "clisi": lambda w: m.clisi(w.values, w.labels, w.params["lisi_perplexity"]),
    "silhouette_treatment": lambda w: m.silhouette_treatment(w.values, w.labels),
    "knn_lobo": lambda w: m.knn_leave_one_batch_out(
        w.values, w.labels, w.batches, w.params["knn_neighbours"]
    ),
}
# The hit-calling job's score: the mean of these bio metrics' scores (summary_scores)
ACTIVITY_METRICS = ("map", "fraction_retrieved")


def holdout_scores(
    wells: pd.DataFrame, values: np.ndarray, holdout_batches, params: dict, validation_batches=()
) -> dict:
    """Biology on batches never seen in training, retrieved from the batches it was trained on:
    each held-out well of a treatment (not negcon) that the training batches have, as a query
    against every training-batch well. ``knn_accuracy``: its nearest neighbours' treatment is
    its own; ``map``: mean over those wells of the AP of retrieving its treatment's
    training-batch wells. Both per well in ``per_well`` (for paired intervals between methods);
    ``score`` = mean of the chance-corrected kNN accuracy and the mAP. Held-out wells of a
    treatment the training batches lack cannot be retrieved and are left out (counted).
    ``validation_batches`` (the WILDS protocol) are neither: never trained on, so no reference,
    and they selected the model, so no test; their wells are left out of both."""
    batches = wells[BATCH].astype(str).to_numpy()
    test = np.isin(batches, [str(b) for b in holdout_batches])
    reference = ~test & ~np.isin(batches, [str(b) for b in validation_batches])
    if not test.any():
        return {"reason": "no held-out batch configured (train.holdout_batches)"}
    if not reference.any():
        return {"reason": "every batch is held out"}
    labels = wells[TREATMENT].astype(str).to_numpy()
    treated = (wells[ROLE] != NEGCON).to_numpy()
    known = np.isin(labels, labels[reference])
    queries = test & treated & known
    if not queries.any():
        return {"reason": "no held-out treatment occurs in the training batches"}
    correct, ap = m.cross_batch_retrieval(
        values, labels, queries, reference, params["holdout_neighbours"]
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


def summary_scores(
    batch: dict,
    bio: dict,
    holdout: dict | None = None,
    activity_weight: float = 0.3,
    activity_metrics: tuple[str, ...] = ACTIVITY_METRICS,
) -> dict:
    """Batch and bio (means of their metrics' [0, 1] scores, shown), the two jobs' scores and
    the overall score that ranks rows.

    Overall = ``activity_weight`` x ``activity`` (the hit-calling job: the mean score of
    ``activity_metrics``, by default the treatments' mean mAP against negcon and the share of
    them called active) + the rest x ``matching`` (the consistency job: held-out batches' wells
    retrieving their treatment from the training batches, ``generalisation``; without held-out
    batches, kNN leave-one-batch-out). The weight and the activity metrics are the ones whose
    ranking followed the truth best on the verdict's tuning panel
    (benchmarks/verdict_weights.py): the share called active is what a screen is judged on,
    mAP its less noisy graded form. Batch removal is a means, not an answer: on the truth
    panel the batch metrics did not follow the truth, and Harmony raises them while it moves
    the biology.
    """

    def mean(entries):
        scores = [entry["score"] for entry in entries.values() if entry["score"] is not None]
        return float(np.mean(scores)) if scores else None

    activity_scores = [bio[name]["score"] for name in activity_metrics]
    activity = None if None in activity_scores else float(np.mean(activity_scores))
    generalisation = (holdout or {}).get("score")
    matching = generalisation if generalisation is not None else bio["knn_lobo"]["score"]
    parts = {
        "batch": mean(batch),
        "bio": mean(bio),
        "activity": activity,
        "generalisation": generalisation,
        "matching": matching,
    }
    jobs = [parts["activity"], matching]
    weights = [activity_weight, 1 - activity_weight]
    summary = {
        **parts,
        "overall": None if None in jobs else float(np.dot(weights, jobs)),
        "weights": {
            "activity": weights[0],
            "generalisation" if generalisation is not None else "knn_lobo": weights[1],
        },
    }
    if summary["overall"] is None:
        summary["reason"] = (
            "no treatment with replicate wells to score against negcon"
            if parts["activity"] is None
            else "no batch to match treatments across (one batch, no held-out batch)"
        )
    return summary


# what a rotated source's held-out scores average over its folds (rotated_holdout_scores)
_FOLD_MEANS = ("knn_accuracy", "knn_chance", "knn_score", "map", "score")


def rotated_holdout_scores(
    wells: pd.DataFrame, values: np.ndarray, batches, params: dict, validation_batches=()
) -> dict:
    """``holdout_scores`` with each of ``batches`` held out in turn, for a source that learnt
    nothing from any batch (CellProfiler's features, a frozen model, an external table) in a
    run whose models hold out every batch in turn (train.rotate_holdout): its matching score is
    then the same held-out retrieval the rotated models get, averaged over the same folds, not
    a different metric. ``folds``: each batch's scores; the means over folds beside them, as
    the ranking averages a rotated model's runs; ``per_well``: every fold's held-out wells."""
    folds = {
        str(batch): holdout_scores(wells, values, [batch], params, validation_batches)
        for batch in batches
    }
    scored = {batch: fold for batch, fold in folds.items() if "score" in fold}
    if not scored:
        return {"reason": "no batch held out in turn has a treatment the others have"}
    return {
        "batches": sorted(scored),
        "wells": sum(fold["wells"] for fold in scored.values()),
        "unseen_treatment_wells": sum(fold["unseen_treatment_wells"] for fold in scored.values()),
        "neighbours": params["holdout_neighbours"],
        **{key: float(np.mean([fold[key] for fold in scored.values()])) for key in _FOLD_MEANS},
        "folds": {batch: {key: fold[key] for key in _FOLD_MEANS} for batch, fold in scored.items()},
        "per_well": [well for fold in scored.values() for well in fold["per_well"]],
    }


def compute_metrics(
    wells: pd.DataFrame,
    params: dict | None = None,
    holdout_batches=(),
    truth: pd.DataFrame | None = None,
    validation_batches=(),
    rotate_holdout: bool = False,
) -> dict:
    """Every metric of one method x correction's well profiles (JSON-ready);
    ``validation_batches``: left out of the held-out scores' reference (holdout_scores);
    ``rotate_holdout``: each of ``holdout_batches`` held out in turn (rotated_holdout_scores)."""
    params = DIAGNOSTICS.merge(params)
    values = wells[feature_columns(wells.columns)].to_numpy(np.float64)
    batches = wells[BATCH].astype(str).to_numpy()
    labels = wells[TREATMENT].astype(str).to_numpy()
    scored = ScoredWells(wells, values, batches, labels, params)
    batch = {name: metric(scored) for name, metric in BATCH_METRICS.items()}
    bio = {name: metric(scored) for name, metric in BIO_METRICS.items()}
    per_treatment = scored.activity[2]
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
        "replicates": m.percent_replicating(wells),
        "per_treatment": [] if per_treatment is None else per_treatment.to_dict(orient="records"),
        "holdout": (rotated_holdout_scores if rotate_holdout else holdout_scores)(
            wells, values, holdout_batches, params, validation_batches
        ),
    }
    metrics["scores"] = summary_scores(batch, bio, metrics["holdout"], params["activity_weight"])
    if truth is not None:
        metrics["truth"] = truth_scores(per_treatment, truth, metrics["holdout"])
    log.info("diagnostics: scores %s", metrics["scores"])
    return metrics
