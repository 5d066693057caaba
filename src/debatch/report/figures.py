"""Figures of the diagnostics and report: PCA of well profiles, cells per well, metric bars.

All figures are small PNGs (matplotlib, Agg backend) so they embed in the HTML report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from debatch.core.plotting import MARKERS, PALETTE, draw_plate, plate_shape, pyplot
from debatch.core.stats import pca
from debatch.evaluate.diagnostics import BATCH_METRICS, BIO_METRICS
from debatch.evaluate.metrics import percent_replicating, replicate_correlations
from debatch.settings import BATCH, NEGCON, PLATE, ROLE, TREATMENT, WELL, feature_columns


def _plot_replicates(ax, wells: pd.DataFrame) -> None:
    replicate, other = replicate_correlations(wells)
    entry = percent_replicating(wells)
    bins = np.linspace(-1, 1, 41)
    ax.hist(other, bins=bins, density=True, color="0.7", label="non-replicate pairs")
    ax.hist(
        replicate,
        bins=bins,
        density=True,
        histtype="step",
        lw=2,
        color=PALETTE[0],
        label="replicate pairs",
    )
    if entry["value"] is not None:
        ax.axvline(entry["threshold"], color="k", lw=1, ls="--")
        ax.set_title(f"{entry['value']:.0%} of replicate pairs above the non-replicates' 95th pct")
    ax.set_xlabel("Pearson correlation of two wells' profiles")
    ax.legend(fontsize=7)


def plot_pca(wells: pd.DataFrame, title: str, path) -> None:
    """PCA of well profiles coloured by batch and by treatment (negcon grey), and the
    replicate-correlation histogram (replicate vs non-replicate well pairs)."""
    plt = pyplot()
    scores, explained = pca(wells[feature_columns(wells.columns)].to_numpy(np.float64))
    if scores.shape[1] < 2:
        scores = np.column_stack([scores, np.zeros(len(scores))])
        explained = np.append(explained, 0.0)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    _plot_replicates(axes[2], wells)
    for ax, column in zip(axes, [BATCH, TREATMENT]):
        labels = wells[column].astype(str).to_numpy()
        for i, label in enumerate(np.unique(labels)):
            chosen = labels == label
            negcon = column == TREATMENT and (wells.loc[chosen, ROLE] == NEGCON).all()
            ax.scatter(
                scores[chosen, 0],
                scores[chosen, 1],
                s=18,
                label=label,
                color="0.75" if negcon else PALETTE[i % len(PALETTE)],
                marker=MARKERS[i % len(MARKERS)],
                edgecolors="none",
            )
        ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
        ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
        ax.set_title(f"coloured by {column.removeprefix('Metadata_').lower()}")
        ax.legend(fontsize=7, markerscale=0.8, loc="best", ncol=1 + len(np.unique(labels)) // 12)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_cells_per_well(cells: pd.DataFrame, path) -> None:
    """Cells per well of every plate, laid out as the plates on one colour scale: density
    differs by batch, and a dispenser or edge problem shows as a pattern. ``cells``: one row per
    analysed cell (the crops tables) with Metadata_Plate, Metadata_Batch and Metadata_Well."""
    plt = pyplot()
    wells = cells.groupby([PLATE, BATCH, WELL], observed=True).size().rename("cells").reset_index()
    shape = plate_shape(wells[WELL])
    rows, cols = shape
    plates = sorted(wells[PLATE].astype(str).unique())
    per_row = min(len(plates), 3)
    n_rows = -(-len(plates) // per_row)
    cell = min(0.45, 10 / (cols * per_row))  # inches per well: a 384-well plate still fits a page
    fig, axes = plt.subplots(
        n_rows,
        per_row,
        figsize=(cell * cols * per_row + 1.5, (cell * rows + 0.5) * n_rows),
        squeeze=False,
        layout="constrained",
    )
    vmin, vmax = wells["cells"].min(), wells["cells"].max()
    image = None
    for ax, plate in zip(axes.flat, plates):
        on_plate = wells[wells[PLATE].astype(str) == plate]
        image = draw_plate(
            ax,
            on_plate.set_index(WELL)["cells"],
            shape,
            "viridis",
            vmin,
            vmax,
            annotate=rows * cols <= 96,
        )
        ax.set_title(f"{plate} ({on_plate[BATCH].iloc[0]})", fontsize=9)
    for ax in list(axes.flat)[len(plates) :]:
        ax.axis("off")
    fig.colorbar(image, ax=axes, shrink=0.8, label="cells per well")
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_metric_bars(entries: list[dict], title: str, path) -> None:
    """[0, 1] score of every metric, one bar per correction (higher is better everywhere)."""
    plt = pyplot()
    groups = [
        ("batch removal", "batch", BATCH_METRICS),
        ("biology kept", "bio", BIO_METRICS),
        ("summary", "scores", ("batch", "bio", "generalisation", "overall")),
    ]
    fig, axes = plt.subplots(
        1, 3, figsize=(12, 3.6), gridspec_kw={"width_ratios": [5, 5, 4]}, sharey=True
    )
    width = 0.8 / max(len(entries), 1)
    for ax, (heading, section, names) in zip(axes, groups):
        x = np.arange(len(names))
        for i, entry in enumerate(entries):
            block = entry["metrics"][section]
            scores = [block.get(n) if section == "scores" else block[n]["score"] for n in names]
            heights = [np.nan if s is None else s for s in scores]
            ax.bar(
                x + (i - (len(entries) - 1) / 2) * width,
                heights,
                width,
                label=entry["correction"],
                color=PALETTE[i % len(PALETTE)],
            )
        ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=30, ha="right", fontsize=8)
        ax.set_title(heading, fontsize=10)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("score (1 = best)")
    axes[-1].legend(fontsize=8, title="correction", title_fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
