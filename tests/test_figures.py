"""Figures: PCA, per-plate heatmaps and metric bars are written as PNGs; well names parsed."""

import numpy as np
import pytest

from debatch.diagnostics import compute_metrics
from debatch.figures import plot_metric_bars, plot_pca, plot_plate_heatmaps, well_position
from debatch.metrics import pca
from test_diagnostics import wells_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_pca_explains_the_dominant_axis():
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.normal(size=100) * 10, rng.normal(size=100)])
    scores, explained = pca(values)
    assert explained[0] > 0.95 and scores.shape == (100, 2)


def test_well_positions():
    assert well_position("A01") == (0, 0)
    assert well_position("p24") == (15, 23)
    assert well_position("AF48") == (31, 47)  # 1536-well plates
    with pytest.raises(ValueError, match="well 'r01c01' is not a plate position"):
        well_position("r01c01")


def test_figures_are_pngs(tmp_path):
    wells = wells_table(batch_shift=1.0)
    wells["Metadata_Count_Cells"] = np.arange(len(wells))
    plot_pca(wells, "title", tmp_path / "pca.png")
    plot_plate_heatmaps(wells, tmp_path / "counts.png")
    metrics = compute_metrics(wells, {"map_null_size": 500})
    plot_metric_bars([{"correction": "none", "metrics": metrics},
                      {"correction": "harmony", "metrics": metrics}], "erm", tmp_path / "bars.png")
    for name in ("pca.png", "counts.png", "bars.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
