"""Figures: PCA, cells per well and metric bars are written as PNGs."""

import numpy as np
import pandas as pd

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


def text_boxes(fig):
    """(text, its box in pixels, font size) of every text the figure draws."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [
        (t.get_text(), t.get_window_extent(renderer), t.get_fontsize())
        for t in fig.findobj(Text)
        if _drawn(t)
    ]


def _drawn(text) -> bool:
    """Visible, not empty, and for a tick label inside its axis' view (matplotlib keeps the
    labels of ticks it does not draw)."""
    if not (text.get_visible() and text.get_text().strip()):
        return False
    ax = text.axes
    if ax is None:
        return True
    x, y = text.get_position()
    if text in ax.get_xticklabels():
        return min(ax.get_xlim()) <= x <= max(ax.get_xlim())
    if text in ax.get_yticklabels():
        return min(ax.get_ylim()) <= y <= max(ax.get_ylim())
    return True


def assert_legible(fig, legends=True):
    """No text outside the figure (clipped) or smaller than FONT (titles of the figure may be
    larger); ``legends``: the figure has some, each outside every panel's data area."""
    from debatch.core.plotting import FONT

    canvas = fig.bbox
    for text, box, size in text_boxes(fig):
        assert size >= FONT, (text, size)
        assert box.x0 >= canvas.x0 - 1 and box.x1 <= canvas.x1 + 1, f"clipped: {text!r}"
        assert box.y0 >= canvas.y0 - 1 and box.y1 <= canvas.y1 + 1, f"clipped: {text!r}"
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.collections or ax.patches or ax.images]
    found = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert bool(found) == legends
    for legend in found:
        for ax in panels:
            assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


def test_figures_have_readable_text_and_legends_outside_the_data():
    """The report's figures: nothing clipped (a long title wraps), no text under FONT, every
    legend beside the panels, never over points or bars (issue 28: "95th pc" clipped, 6 px
    legends over the points)."""
    from debatch.core.plotting import pyplot
    from debatch.report.figures import metric_bars_figure, pca_figure, umap_figure

    wells = wells_table(batch_shift=1.0)
    metrics = compute_metrics(wells, {"map_null_size": 500})
    entries = [{"correction": c, "metrics": metrics} for c in ("none", "sphering", "harmony")]
    profiles = {"none": wells, "harmony": wells_table(seed=1)}
    for fig in (
        pca_figure(wells, "well profiles: erm/seed0 / none"),
        umap_figure(profiles, "UMAP of well profiles: " + "a long source name " * 8, 0, 100),
        metric_bars_figure(entries, "metric scores: erm/seed0"),
    ):
        assert_legible(fig)
        pyplot().close(fig)


def test_a_screen_of_many_treatments_is_coloured_by_role_with_a_short_legend():
    """Past MAX_LEGEND treatments a legend cannot list them: points are coloured by role."""
    from debatch.core.plotting import pyplot
    from debatch.report.figures import MAX_LEGEND, pca_figure

    wells = wells_table()
    treated = wells["Metadata_Role"] != "negcon"
    wells.loc[treated, "Metadata_Treatment"] = [f"cpd{i:03d}" for i in range(treated.sum())]
    assert wells["Metadata_Treatment"].nunique() > MAX_LEGEND
    fig = pca_figure(wells, "many compounds")
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["negcon", "treatment"] and fig.axes[1].get_title() == "coloured by role"
    assert_legible(fig)
    pyplot().close(fig)


def test_plate_heatmaps_are_legible_sparse_or_dense():
    """A demo plate's wells carry their value in FONT; three 384-well plates per row label every
    second row and column, and no two labels overlap."""
    from debatch.core.plotting import pyplot
    from debatch.core.wells import row_name
    from debatch.report.figures import cells_per_well_figure

    wells = [f"{row_name(r)}{c + 1:02d}" for r in range(16) for c in range(24)]
    cells = pd.DataFrame(
        {
            "Metadata_Plate": np.repeat([f"P{p}" for p in range(4)], len(wells)),
            "Metadata_Batch": "b1",
            "Metadata_Well": wells * 4,
        }
    )
    demo = cells[cells["Metadata_Well"].str[0].isin(list("ABCD"))]
    demo = demo[demo["Metadata_Well"].str[1:].astype(int) <= 6]
    fig = cells_per_well_figure(demo.loc[demo.index.repeat(3)])
    assert len(fig.axes[0].texts) == 24  # a value in every well
    assert_legible(fig, legends=False)
    pyplot().close(fig)
    fig = cells_per_well_figure(cells)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()][:3] == ["1", "3", "5"]
    assert [t.get_text() for t in ax.get_yticklabels()][:3] == ["A", "C", "E"]
    assert_legible_ticks(fig)
    pyplot().close(fig)


def assert_legible_ticks(fig):
    """Tick labels of one axis never overlap each other."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            boxes = [t.get_window_extent(renderer) for t in labels if t.get_text()]
            assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))
