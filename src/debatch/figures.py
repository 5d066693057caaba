"""Figures of the diagnostics and report: PCA of well profiles, per-plate QC heatmaps, metric bars.

All figures are small PNGs (matplotlib, Agg backend) so they embed in the HTML report.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from debatch.aggregate import COUNT_COLUMN, feature_columns
from debatch.diagnostics import BATCH_METRICS, BIO_METRICS
from debatch.metrics import pca

# tab20 without its greys (reserved for negative controls), saturated colours first.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
           "#dbdb8d", "#9edae5"]
WELL_NAME = re.compile(r"^([A-Za-z]{1,2})0*(\d+)$")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_pca(wells: pd.DataFrame, title: str, path) -> None:
    """PCA of well profiles coloured by batch (left) and by treatment (right, negcon grey)."""
    plt = _pyplot()
    scores, explained = pca(wells[feature_columns(wells.columns)].to_numpy(np.float64))
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


def well_position(well: str) -> tuple[int, int]:
    """(row, column), 0-based, of a well name such as A01, B7 or AA12."""
    match = WELL_NAME.match(str(well))
    if not match:
        raise ValueError(f"well {well!r} is not a plate position like A01 (row letter + column number)")
    letters, column = match.groups()
    row = 0
    for letter in letters.upper():
        row = row * 26 + ord(letter) - ord("A") + 1
    return row - 1, int(column) - 1


def plot_plate_heatmaps(wells: pd.DataFrame, path, column: str = COUNT_COLUMN,
                        label: str = "cells per well") -> None:
    """One plate-layout heatmap of ``column`` per plate, on a shared colour scale."""
    plt = _pyplot()
    positions = np.array([well_position(w) for w in wells["Metadata_Well"]]).reshape(-1, 2)
    rows, cols = positions.max(axis=0) + 1
    plates = sorted(wells["Metadata_Plate"].astype(str).unique())
    per_row = min(len(plates), 3)
    n_rows = -(-len(plates) // per_row)
    cell = min(0.45, 10 / (cols * per_row))  # inches per well: a 384-well plate still fits a page
    fig, axes = plt.subplots(n_rows, per_row, figsize=(cell * cols * per_row + 1.5, (cell * rows + 0.5) * n_rows),
                             squeeze=False, layout="constrained")
    vmin, vmax = wells[column].min(), wells[column].max()
    annotate = rows * cols <= 96
    image = None
    for ax, plate in zip(axes.flat, plates):
        on_plate = (wells["Metadata_Plate"].astype(str) == plate).to_numpy()
        grid = np.full((rows, cols), np.nan)
        for (row, col), value in zip(positions[on_plate], wells.loc[on_plate, column]):
            grid[row, col] = value
            if annotate:  # white on the dark half of viridis
                dark = (value - vmin) < 0.5 * (vmax - vmin)
                ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if dark else "black")
        image = ax.imshow(grid, cmap="viridis", vmin=vmin, vmax=vmax)
        batch = wells.loc[on_plate, "Metadata_Batch"].iloc[0] if "Metadata_Batch" in wells else ""
        ax.set_title(f"{plate} ({batch})", fontsize=9)
        ax.set_xticks(range(cols), [str(c + 1) for c in range(cols)], fontsize=6)
        ax.set_yticks(range(rows), [chr(ord("A") + r) if r < 26 else str(r + 1) for r in range(rows)], fontsize=6)
    for ax in list(axes.flat)[len(plates):]:
        ax.axis("off")
    fig.colorbar(image, ax=axes, shrink=0.8, label=label)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_metric_bars(entries: list[dict], title: str, path) -> None:
    """[0, 1] score of every metric, one bar per correction (higher is better everywhere)."""
    plt = _pyplot()
    groups = [("batch removal", "batch", BATCH_METRICS), ("biology kept", "bio", BIO_METRICS),
              ("summary", "scores", ("batch", "bio", "overall"))]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), gridspec_kw={"width_ratios": [5, 5, 3]}, sharey=True)
    width = 0.8 / max(len(entries), 1)
    for ax, (heading, section, names) in zip(axes, groups):
        x = np.arange(len(names))
        for i, entry in enumerate(entries):
            block = entry["metrics"][section]
            scores = [block[n] if section == "scores" else block[n]["score"] for n in names]
            heights = [np.nan if s is None else s for s in scores]
            ax.bar(x + (i - (len(entries) - 1) / 2) * width, heights, width, label=entry["correction"],
                   color=PALETTE[i % len(PALETTE)])
        ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=30, ha="right", fontsize=8)
        ax.set_title(heading, fontsize=10)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("score (1 = best)")
    axes[-1].legend(fontsize=8, title="correction", title_fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
