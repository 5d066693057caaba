"""Batch-removal and biology-conservation metrics of well profiles, each scaled to [0, 1].

Every function returns ``{"value": raw, "score": in [0, 1] where 1 is best, ...}``, or value
and score None with a ``reason`` when the data cannot support the metric (one batch, no
replicates...), so a small screen degrades to fewer metrics instead of crashing. The scalings
follow scib (Luecken et al. 2022, Nat Methods), as used by Arevalo et al. 2024 (Nat Commun)
to rank batch-correction methods for image-based profiles; docs/metrics.md lists them.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd

from debatch.core.stats import pca
from debatch.settings import NEGCON, ROLE, TREATMENT, feature_columns

# scikit-learn and scipy.sparse are imported in the functions that use them: the figure and
# report jobs import this module (through debatch.report.figures) for its numpy-only functions,
# and importing them would lengthen each of those jobs' start-up (scikit-learn most).


def result(value=None, score=None, reason: str | None = None, **extra) -> dict:
    """A metric's JSON entry: raw value, [0, 1] score, and why it is missing if it is."""
    entry = {
        "value": None if value is None else float(value),
        "score": None if score is None else float(np.clip(score, 0.0, 1.0)),
    }
    if value is None and score is None:
        entry["reason"] = reason or "not computable"
    return {**entry, **extra}


def _chance_corrected(accuracy: float, chance: float) -> float:
    return (accuracy - chance) / (1 - chance) if chance < 1 else 0.0


# --- batch removal -------------------------------------------------------------------------


def batch_classifier(
    values: np.ndarray, batches: np.ndarray, seed: int = 0, max_folds: int = 5
) -> dict:
    """Cross-validated accuracy of predicting the batch from a profile (logistic regression).

    Score 1 - (accuracy - chance) / (1 - chance), chance = majority-batch fraction: 1 when the
    batch is no longer readable, 0 when it is read perfectly.
    """
    labels, counts = np.unique(batches, return_counts=True)
    if len(labels) < 2:
        return result(reason="needs at least 2 batches")
    chance = float(counts.max() / counts.sum())
    folds = int(min(max_folds, counts.min()))
    if folds < 2:
        return result(reason="a batch has fewer than 2 wells", chance=chance)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accuracy = float(cross_val_score(model, values, batches, cv=splitter).mean())
    return result(accuracy, 1 - _chance_corrected(accuracy, chance), chance=chance, folds=folds)


def silhouette_batch(values: np.ndarray, batches: np.ndarray, labels: np.ndarray) -> dict:
    """scib's batch ASW: within each treatment, silhouette of the wells by batch (cosine).

    Per well 1 - |s| (0 = sits with its own batch or away from it, 1 = batches overlap),
    averaged per treatment, then over treatments. Value = score; ``global`` is the plain
    silhouette by batch over all wells (near 0 or below = no batch clusters).
    """
    from sklearn.metrics import silhouette_samples

    if len(np.unique(batches)) < 2:
        return result(reason="needs at least 2 batches")
    per_label = []
    for label in np.unique(labels):
        chosen = labels == label
        n_batches = len(np.unique(batches[chosen]))
        if n_batches < 2 or n_batches == chosen.sum():
            continue
        scores = silhouette_samples(values[chosen], batches[chosen], metric="cosine")
        per_label.append(np.mean(1 - np.abs(scores)))
    if not per_label:
        return result(reason="no treatment has replicate wells in 2 or more batches")
    asw = float(np.mean(per_label))
    overall = silhouette_samples(values, batches, metric="cosine").mean()
    return result(asw, asw, global_silhouette=float(overall), treatments=len(per_label))


def _perplexity(n_wells: int, wanted: float) -> float:
    """harmonypy's LISI looks at 3 x perplexity neighbours, which must exist."""
    return float(min(wanted, (n_wells - 1) // 3))


def lisi(values: np.ndarray, labels: np.ndarray, perplexity: float) -> float:
    """Median Local Inverse Simpson Index (harmonypy's compute_lisi, Euclidean)."""
    from harmonypy import compute_lisi

    scores = compute_lisi(
        np.ascontiguousarray(values, dtype=np.float64),  # its compiled core takes C order only
        pd.DataFrame({"label": labels}),
        ["label"],
        perplexity=_perplexity(len(values), perplexity),
    )
    return float(np.median(scores[:, 0]))


def ilisi(values: np.ndarray, batches: np.ndarray, perplexity: float = 30) -> dict:
    """Batch LISI: effective number of batches around a well; score (iLISI - 1) / (batches - 1)."""
    n_batches = len(np.unique(batches))
    if n_batches < 2:
        return result(reason="needs at least 2 batches")
    if len(values) < 4:
        return result(reason="needs at least 4 wells")
    value = lisi(values, batches, perplexity)
    return result(value, (value - 1) / (n_batches - 1), batches=n_batches)


def pcr_batch(values: np.ndarray, batches: np.ndarray, n_components: int = 50) -> dict:
    """Principal-component regression: variance-weighted R² of each PC regressed on batch.

    R²_k of PC k on the one-hot batch is its between-batch share of variance; the value is
    sum_k var_k R²_k / sum_k var_k over the first ``n_components`` PCs; score 1 - value.
    """
    unique = np.unique(batches)
    if len(unique) < 2:
        return result(reason="needs at least 2 batches")
    scores, explained = pca(values, n_components)
    total = (scores**2).sum(axis=0)
    between = sum((batches == b).sum() * scores[batches == b].mean(axis=0) ** 2 for b in unique)
    r2 = np.divide(between, total, out=np.zeros_like(total), where=total > 0)
    value = float((explained * r2).sum() / explained.sum()) if explained.sum() > 0 else 0.0
    return result(value, 1 - value, components=len(explained))


def _knn_graph(values: np.ndarray, k: int):
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(values) - 1)
    return (
        NearestNeighbors(n_neighbors=k, metric="cosine")
        .fit(values)
        .kneighbors_graph(mode="connectivity")
    )


def graph_connectivity(
    values: np.ndarray, labels: np.ndarray, batches: np.ndarray, k: int = 15
) -> dict:
    """scib's graph connectivity: in the kNN graph (cosine) restricted to each treatment's wells,
    the fraction of them in the largest connected component, averaged over treatments.

    Batches split a treatment into disconnected islands (score 1 / batches); mixed, it is one.
    """
    from scipy.sparse.csgraph import connected_components

    if len(np.unique(batches)) < 2:
        return result(reason="needs at least 2 batches")
    graph = _knn_graph(values, k)
    fractions = []
    for label in np.unique(labels):
        chosen = np.flatnonzero(labels == label)
        if len(chosen) < 2:
            continue
        _, components = connected_components(
            graph[chosen][:, chosen], directed=True, connection="weak"
        )
        fractions.append(np.bincount(components).max() / len(chosen))
    if not fractions:
        return result(reason="no treatment has 2 or more wells")
    value = float(np.mean(fractions))
    return result(value, value, neighbours=int(min(k, len(values) - 1)))


# --- biology kept --------------------------------------------------------------------------


def map_activity(
    meta: pd.DataFrame,
    values: np.ndarray,
    null_size: int = 10000,
    threshold: float = 0.05,
    seed: int = 0,
) -> tuple[dict, dict, pd.DataFrame | None]:
    """copairs phenotypic activity: per treatment, mAP of its replicate wells against negcon
    wells (cosine), with permutation p-values, Benjamini-Hochberg corrected.

    Returns (mAP entry, fraction-retrieved entry, per-treatment table). mAP is in [0, 1]
    already (score = value); retrieved = corrected p < threshold.
    """
    from copairs.map import average_precision, mean_average_precision
    from copairs.matching import assign_reference_index

    negcon = (meta[ROLE] == NEGCON).to_numpy()
    counts = meta.loc[~negcon, TREATMENT].value_counts()
    if negcon.sum() < 1 or (counts >= 2).sum() == 0:
        reason = "needs negcon wells and a treatment with 2 or more wells"
        return result(reason=reason), result(reason=reason), None
    keep = negcon | meta[TREATMENT].isin(counts[counts >= 2].index).to_numpy()
    reference = "Metadata_Reference_Index"
    table = meta.loc[keep, [TREATMENT, ROLE]].reset_index(drop=True)
    table = assign_reference_index(table, f"{ROLE} == '{NEGCON}'", reference_col=reference)
    by = [TREATMENT, reference]
    ap = average_precision(
        table,
        values[keep],
        pos_sameby=by,
        pos_diffby=[],
        neg_sameby=[],
        neg_diffby=by,
        progress_bar=False,
    )
    ap = ap[ap[ROLE] != NEGCON]
    with tempfile.TemporaryDirectory() as cache:  # copairs caches nulls in ~/.copairs otherwise
        per_treatment = mean_average_precision(
            ap,
            [TREATMENT],
            null_size=null_size,
            threshold=threshold,
            seed=seed,
            progress_bar=False,
            cache_dir=cache,
        )
    per_treatment = per_treatment[
        [TREATMENT, "mean_average_precision", "p_value", "corrected_p_value", "below_corrected_p"]
    ].reset_index(drop=True)
    mean_ap = float(per_treatment["mean_average_precision"].mean())
    retrieved = float(per_treatment["below_corrected_p"].mean())
    n = len(per_treatment)
    return (
        result(mean_ap, mean_ap, treatments=n),
        result(retrieved, retrieved, treatments=n, threshold=threshold),
        per_treatment,
    )


def clisi(values: np.ndarray, labels: np.ndarray, perplexity: float = 30) -> dict:
    """Treatment LISI: effective number of treatments around a well; score (L - cLISI) / (L - 1)."""
    n_labels = len(np.unique(labels))
    if n_labels < 2 or len(values) < 4:
        return result(reason="needs at least 2 treatments and 4 wells")
    value = lisi(values, labels, perplexity)
    return result(value, (n_labels - value) / (n_labels - 1), treatments=n_labels)


def silhouette_treatment(values: np.ndarray, labels: np.ndarray) -> dict:
    """Mean silhouette (cosine) of wells grouped by treatment; score (s + 1) / 2 (scib's label
    ASW)."""
    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels >= len(labels):
        return result(reason="needs 2 or more treatments with replicate wells")
    from sklearn.metrics import silhouette_samples

    value = float(silhouette_samples(values, labels, metric="cosine").mean())
    return result(value, (value + 1) / 2)


def knn_accuracy(
    values: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, k: int = 5
) -> float:
    """Treatment accuracy of a cosine kNN fitted on ``train`` wells, predicting ``test`` wells."""
    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(n_neighbors=int(min(k, train.sum())), metric="cosine")
    model.fit(values[train], labels[train])
    return float((model.predict(values[test]) == labels[test]).mean())


def knn_leave_one_batch_out(
    values: np.ndarray, labels: np.ndarray, batches: np.ndarray, k: int = 5
) -> dict:
    """Each batch's wells predicted from the other batches only (kNN, cosine); pooled accuracy.

    A well whose treatment no other batch has cannot be predicted and is left out (counted as
    ``unseen``). Score (accuracy - chance) / (1 - chance), chance = majority-treatment fraction
    of the wells scored.
    """
    unique = np.unique(batches)
    if len(unique) < 2:
        return result(reason="needs at least 2 batches")
    correct, scored, unseen = 0.0, [], 0
    for batch in unique:
        test = batches == batch
        known = test & np.isin(labels, labels[~test])
        unseen += int((test & ~known).sum())
        if known.any():
            correct += knn_accuracy(values, labels, ~test, known, k) * known.sum()
            scored.append(labels[known])
    if not scored:
        return result(reason="no treatment occurs in two batches", unseen=unseen)
    scored = np.concatenate(scored)
    accuracy = correct / len(scored)
    chance = float(pd.Series(scored).value_counts(normalize=True).max())
    return result(
        accuracy, _chance_corrected(accuracy, chance), chance=chance, neighbours=k, unseen=unseen
    )


def replicate_correlations(wells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlations of well-profile pairs: (replicates: same treatment, not negcon;
    non-replicates: different treatments), the profiling-recipe's replicate check."""
    values = wells[feature_columns(wells.columns)].to_numpy(np.float64)
    correlation = np.corrcoef(values) if len(values) > 1 else np.zeros((len(values),) * 2)
    treatment = wells[TREATMENT].astype(str).to_numpy()
    control = (wells[ROLE] == NEGCON).to_numpy() if ROLE in wells else np.zeros(len(wells), bool)
    upper = np.triu(np.ones_like(correlation, bool), k=1)
    same = treatment[:, None] == treatment[None, :]
    replicate = upper & same & ~control[:, None]
    return correlation[replicate], correlation[upper & ~same]


def percent_replicating(wells: pd.DataFrame) -> dict:
    """Share of replicate well pairs correlated above the non-replicate pairs' 95th percentile
    (``threshold``): not in any score; a correction that lowers it against ``none`` has pulled
    replicates apart (an over-correction flag of the ranking)."""
    replicate, other = replicate_correlations(wells)
    if not len(replicate) or not len(other):
        return result(reason="needs replicate and non-replicate well pairs")
    threshold = float(np.percentile(other, 95))
    share = float(np.mean(replicate > threshold))
    return result(share, share, threshold=threshold, pairs=len(replicate))


def average_precision(similarity: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AP of each query row: the reference columns ranked by ``similarity`` (highest first),
    ``positive`` marking the relevant ones; NaN for a query without any."""
    order = np.argsort(-similarity, axis=1, kind="stable")
    hits = np.take_along_axis(positive, order, axis=1)
    ranks = np.arange(1, hits.shape[1] + 1)
    precision = np.cumsum(hits, axis=1) / ranks
    n_positive = hits.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (precision * hits).sum(axis=1) / n_positive


def cross_batch_retrieval(
    values: np.ndarray, labels: np.ndarray, queries: np.ndarray, reference: np.ndarray, k: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Per query well: whether its kNN (cosine) among the ``reference`` wells predicts its
    treatment, and the AP of retrieving the reference wells of its treatment among them all."""
    from sklearn.neighbors import KNeighborsClassifier

    unit = values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
    similarity = unit[queries] @ unit[reference].T
    positive = labels[queries][:, None] == labels[reference][None, :]
    model = KNeighborsClassifier(n_neighbors=int(min(k, reference.sum())), metric="cosine")
    model.fit(values[reference], labels[reference])
    correct = model.predict(values[queries]) == labels[queries]
    return correct, average_precision(similarity, positive)
