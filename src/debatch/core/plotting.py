"""Matplotlib set-up and the plate-layout heatmap every QC and report figure draws with."""

from __future__ import annotations

import numpy as np
import pandas as pd

from debatch.core.wells import row_name, well_position

# tab20 without its greys (reserved for negative controls), saturated colours first.
PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
    "#9edae5",
]


def pyplot():
    """matplotlib.pyplot on the Agg backend (jobs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plate_shape(wells) -> tuple[int, int]:
    """(rows, columns) of the smallest plate layout holding every well in ``wells``."""
    positions = np.array([well_position(well) for well in wells]).reshape(-1, 2)
    return tuple(positions.max(axis=0) + 1) if len(positions) else (1, 1)


def draw_plate(
    ax,
    values: pd.Series,
    shape: tuple[int, int],
    cmap: str,
    vmin=None,
    vmax=None,
    annotate: bool = False,
    marked=(),
):
    """``values`` (indexed by well name) laid out as the plate on ``ax``; an "x" on every well
    in ``marked``, the value written in each well when ``annotate``. Returns the image."""
    rows, cols = shape
    grid = np.full((rows, cols), np.nan)
    positions = [well_position(well) for well in values.index]
    for (row, col), value in zip(positions, values.to_numpy(float)):
        grid[row, col] = value
    image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax)
    low, high = image.get_clim()
    for (row, col), value, well in zip(positions, values.to_numpy(float), values.index):
        if annotate:  # white on the dark half of the colour map
            dark = (value - low) < 0.5 * (high - low)
            ax.text(
                col,
                row,
                f"{value:.0f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if dark else "black",
            )
        if well in marked:
            ax.text(
                col, row, "x", ha="center", va="center", color="red", fontsize=9, fontweight="bold"
            )
    ax.set_xticks(range(cols), [str(c + 1) for c in range(cols)], fontsize=6)
    ax.set_yticks(range(rows), [row_name(r) for r in range(rows)], fontsize=6)
    return image
