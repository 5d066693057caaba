"""Diagnostics: metrics move the right way between mixed and separated batches."""

import numpy as np
import pandas as pd

from debatch.diagnostics import batch_classifier_accuracy, compute_metrics, pca, plot_pca


def wells_table(batch_shift, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for batch in range(3):
        for treatment in range(4):
            for replicate in range(4):
                values = rng.normal(size=8) * 0.3
                values[treatment] += 3.0 * (treatment > 0)
                values[7] += batch_shift * batch
                rows.append({"Metadata_Batch": f"b{batch}", "Metadata_Treatment": f"t{treatment}",
                             "Metadata_Role": "negcon" if treatment == 0 else "treatment",
                             **{f"emb_{i:03d}": v for i, v in enumerate(values)}})
    return pd.DataFrame(rows)


def test_batch_metrics_detect_separated_batches():
    mixed, separated = compute_metrics(wells_table(0.0)), compute_metrics(wells_table(6.0))
    assert separated["batch_classifier"]["accuracy"] > 0.9
    assert mixed["batch_classifier"]["accuracy"] < 0.6
    assert mixed["batch_classifier"]["chance"] == separated["batch_classifier"]["chance"] == 1 / 3
    assert separated["silhouette_batch"] > mixed["silhouette_batch"]
    assert mixed["silhouette_treatment"] > separated["silhouette_treatment"]


def test_single_batch_says_why_instead_of_crashing():
    result = batch_classifier_accuracy(np.zeros((6, 2)), np.array(["b"] * 6))
    assert result["accuracy"] is None and "2 batches" in result["reason"]


def test_pca_explains_the_dominant_axis():
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.normal(size=100) * 10, rng.normal(size=100)])
    scores, explained = pca(values)
    assert explained[0] > 0.95 and scores.shape == (100, 2)


def test_pca_plot_writes_png(tmp_path):
    plot_pca(wells_table(1.0), "title", tmp_path / "pca.png")
    assert (tmp_path / "pca.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
