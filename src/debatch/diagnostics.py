"""Batch-effect diagnostics on well profiles: how much batch is left, how much biology survives.

Every metric is computed on the same well-profile table the user analyses, so a method x
correction pair is judged on what it actually delivers.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from debatch.params import merge_params as check_params
from debatch.profiles import feature_columns

log = logging.getLogger(__name__)

DEFAULTS = {
    "seed": 0,       # fold assignment of the batch classifier
    "max_folds": 5,  # cross-validation folds (fewer when a batch has fewer wells)
}


# tab20 without its greys (reserved for negative controls), saturated colours first.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
           "#dbdb8d", "#9edae5"]


def merge_params(params: dict | None) -> dict:
    return check_params("diagnostics", DEFAULTS, params)


def pca(values: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Scores and explained-variance ratios of the first components (SVD of centred data)."""
    centred = values - values.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    n_components = min(n_components, len(singular))
    variance = singular**2
    return centred @ components[:n_components].T, variance[:n_components] / variance.sum()


def batch_classifier_accuracy(values: np.ndarray, batches: np.ndarray, seed: int = 0,
                              max_folds: int = 5) -> dict:
    """Cross-validated accuracy of predicting the batch from a profile, with the chance level.

    Accuracy near chance means the batch is no longer readable from the profiles.
    """
    labels, counts = np.unique(batches, return_counts=True)
    if len(labels) < 2:
        return {"accuracy": None, "chance": None, "reason": "needs at least 2 batches"}
    folds = int(min(max_folds, counts.min()))
    if folds < 2:
        return {"accuracy": None, "chance": float(counts.max() / counts.sum()),
                "reason": "a batch has fewer than 2 wells"}
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(model, values, batches, cv=splitter)
    return {"accuracy": float(scores.mean()), "chance": float(counts.max() / counts.sum()),
            "folds": folds}


def silhouette(values: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean silhouette (cosine) of wells grouped by ``labels``; None when undefined."""
    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels >= len(labels):
        return None
    return float(silhouette_score(values, labels, metric="cosine"))


def compute_metrics(wells: pd.DataFrame, params: dict | None = None) -> dict:
    """Metrics of one method x correction's well profiles (JSON-ready)."""
    params = merge_params(params)
    features = feature_columns(wells)
    values = wells[features].to_numpy(np.float64)
    batches = wells["Metadata_Batch"].to_numpy()
    treated = (wells["Metadata_Role"] != "negcon").to_numpy()
    _, explained = pca(values)
    metrics = {
        "n_wells": len(wells),
        "n_batches": int(len(np.unique(batches))),
        "n_features": len(features),
        "pca_explained_variance": explained.tolist(),
        "batch_classifier": batch_classifier_accuracy(values, batches, params["seed"], params["max_folds"]),
        "silhouette_batch": silhouette(values, batches),
        "silhouette_treatment": silhouette(values[treated], wells["Metadata_Treatment"].to_numpy()[treated]),
    }
    log.info("diagnostics: batch classifier %s, silhouette batch %s / treatment %s",
             metrics["batch_classifier"], metrics["silhouette_batch"], metrics["silhouette_treatment"])
    return metrics


def plot_pca(wells: pd.DataFrame, title: str, path) -> None:
    """PCA of well profiles coloured by batch (left) and by treatment (right, negcon grey)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, explained = pca(wells[feature_columns(wells)].to_numpy(np.float64))
    if scores.shape[1] < 2:
        scores = np.column_stack([scores, np.zeros(len(scores))])
        explained = np.append(explained, 0.0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, column in zip(axes, ["Metadata_Batch", "Metadata_Treatment"]):
        labels = wells[column].astype(str).to_numpy()
        for i, label in enumerate(np.unique(labels)):
            chosen = labels == label
            negcon = column == "Metadata_Treatment" and (wells.loc[chosen, "Metadata_Role"] == "negcon").all()
            ax.scatter(scores[chosen, 0], scores[chosen, 1], s=18, label=label,
                       color="0.75" if negcon else PALETTE[i % len(PALETTE)], edgecolors="none")
        ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
        ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
        ax.set_title(f"coloured by {column.removeprefix('Metadata_').lower()}")
        ax.legend(fontsize=7, markerscale=0.8, loc="best", ncol=1 + len(np.unique(labels)) // 12)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
