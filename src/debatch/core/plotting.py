"""Matplotlib set-up and the plate-layout heatmap every QC and report figure draws with."""

from __future__ import annotations

import numpy as np
import pandas as pd

from debatch.core.wells import row_name, well_position

# Categories readable with any colour vision: Okabe & Ito's eight, then Paul Tol's muted set
# (greys are reserved for negative controls). Scatter plots also cycle marker shapes, so a
# colour that repeats or that a reader cannot tell apart still differs in shape.
PALETTE = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#999933",
    "#DDCC77",
    "#CC6677",
    "#882255",
    "#AA4499",
]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
# pt: the smallest text of any figure (ticks, legends). Figures are saved at 80 dpi and shown
# about their own width in the report, so 9 pt is about 10 screen pixels.
FONT = 9


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
    tick_every: int = 1,
):
    """``values`` (indexed by well name) laid out as the plate on ``ax``; an "x" on every well
    in ``marked``, the value written in each well when ``annotate``; every ``tick_every``-th
    row and column labelled (a dense plate drawn small keeps readable labels). Returns the
    image."""
    rows, cols = shape
    grid = np.full((rows, cols), np.nan)
    positions = [well_position(well) for well in values.index]
    for (row, col), value in zip(positions, values.to_numpy(float)):
        grid[row, col] = value
    from matplotlib import patheffects

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
                fontsize=FONT,
                color="white" if dark else "black",
            )
        if well in marked:  # white with a black edge: visible on every colour of the map
            ax.text(
                col,
                row,
                "x",
                ha="center",
                va="center",
                color="white",
                fontsize=9,
                fontweight="bold",
                path_effects=[patheffects.withStroke(linewidth=2, foreground="black")],
            )
    columns, lines = range(0, cols, tick_every), range(0, rows, tick_every)
    ax.set_xticks(columns, [str(c + 1) for c in columns], fontsize=FONT)
    ax.set_yticks(lines, [row_name(r) for r in lines], fontsize=FONT)
    return image
