"""Figures: PCA, cells per well and metric bars are written as PNGs."""

import numpy as np

from debatch.core.stats import pca
from debatch.evaluate.diagnostics import compute_metrics
from debatch.report.figures import plot_cells_per_well, plot_metric_bars, plot_pca

from builders import wells_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_pca_explains_the_dominant_axis():
    rng = np.random.default_rng(0)
    values = np.column_stack([rng.normal(size=100) * 10, rng.normal(size=100)])
    scores, explained = pca(values)
    assert explained[0] > 0.95 and scores.shape == (100, 2)


def test_figures_are_pngs(tmp_path):
    wells = wells_table(batch_shift=1.0)
    cells = wells.loc[wells.index.repeat(np.arange(len(wells)) % 5 + 1)]  # 1-5 cells per well
    plot_pca(wells, "title", tmp_path / "pca.png")
    plot_cells_per_well(cells, tmp_path / "counts.png")
    metrics = compute_metrics(wells, {"map_null_size": 500})
    plot_metric_bars(
        [{"correction": "none", "metrics": metrics}, {"correction": "harmony", "metrics": metrics}],
        "erm",
        tmp_path / "bars.png",
    )
    for name in ("pca.png", "counts.png", "bars.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
