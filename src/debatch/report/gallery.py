"""The cells behind the numbers: a strip of example cells per treatment, drawn from the crops.

Per treatment (negative controls first), ``per_kind`` random cells and the ``per_kind`` cells
nearest the treatment's median cell, the same cells whatever the method: "nearest" is measured
on the segmentation's own per-cell measurements (log areas and mean intensities, robust
z-scores per plate so batches compare), not on any model's embedding. Every channel has one
contrast (its 1st-99.5th percentile over all cells shown), so strips compare by eye.
With ``crops.unit: site`` the crops are whole sites: the strips show sites, "nearest" measured
on their cell counts (``gallery_text`` words the figure and the page for either).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from debatch.core.plotting import FONT, pyplot
from debatch.core.stats import MAD_SCALE
from debatch.crops.store import crop_unit
from debatch.settings import NEGCON, PLATE, ROLE, SITE_CELLS_META, TREATMENT

# composite colours (name, R G B) of the Cell Painting channels; other channels are left out.
# Green beside magenta, never beside red, so readers without red-green vision tell them apart.
COLOURS = {
    "DNA": ("blue", (0.0, 0.3, 1.0)),
    "ER": ("green", (0.0, 1.0, 0.2)),
    "AGP": ("magenta", (1.0, 0.1, 0.8)),
    "Mito": ("yellow", (1.0, 0.8, 0.0)),
    "RNA": ("cyan", (0.0, 0.85, 0.9)),
}
PROFILE = ("AreaShape_Area", "Intensity_MeanIntensity_")


def gallery_text(unit: str) -> tuple[str, str]:
    """(heading, caption) of the gallery of ``unit`` (crops.unit: cell or site) on the page."""
    if unit == "site":
        return "Sites per treatment", (
            "Per treatment (negative controls first): random whole sites, then the sites "
            "nearest the treatment's median cell count (the same sites for every method), as "
            "the models see them (crops.site_size); one contrast per channel over every site shown."
        )
    return "Cells per treatment", (
        "Per treatment (negative controls first): random cells, then the cells nearest the "
        "treatment's median cell by the segmentation's own measurements (the same cells for "
        "every method); one contrast per channel over every cell shown."
    )


def _descriptor(table: pd.DataFrame) -> pd.DataFrame:
    """Per cell, log areas and mean intensities as robust z-scores within each plate (per whole
    site, crops.unit site: its log cell count)."""
    columns = [
        c
        for c in table
        if c.startswith(("Nuclei_", "Cells_")) and c.split("_", 1)[1].startswith(PROFILE)
    ] or [c for c in (SITE_CELLS_META,) if c in table]
    values = np.log(table[columns].clip(lower=1e-6).astype(float))
    grouped = values.groupby(table[PLATE])
    centre = grouped.transform("median")
    spread = (values - centre).abs().groupby(table[PLATE]).transform("median") * MAD_SCALE
    return (values - centre) / spread.where(spread > 0, 1.0)


def pick_cells(table: pd.DataFrame, per_kind: int, seed: int) -> pd.DataFrame:
    """Rows of ``table`` (all plates' crops tables, with a ``crop`` column: the row in its
    plate's crops) to show: per treatment, ``per_kind`` random and ``per_kind`` typical cells,
    with ``kind``; treatments in order, negative controls first."""
    rng = np.random.default_rng(seed)
    descriptor = _descriptor(table)
    negcon = table[ROLE] == NEGCON if ROLE in table else pd.Series(False, index=table.index)
    order = sorted(
        table[TREATMENT].unique(), key=lambda t: (not negcon[table[TREATMENT] == t].any(), t)
    )
    picked = []
    for treatment in order:
        rows = table.index[table[TREATMENT] == treatment]
        distance = ((descriptor.loc[rows] - descriptor.loc[rows].median()) ** 2).sum(axis=1)
        typical = distance.nsmallest(per_kind).index
        others = rows.difference(typical)
        chosen = rng.choice(others, min(per_kind, len(others)), replace=False)
        picked.append(table.loc[chosen].assign(kind="random"))
        picked.append(table.loc[typical].assign(kind="typical"))
    return pd.concat(picked)


def channel_limits(stack: np.ndarray) -> np.ndarray:
    """(C x 2) contrast limits: each channel's 1st and 99.5th percentile over ``stack``."""
    flat = np.moveaxis(np.asarray(stack, np.float32), 1, 0).reshape(stack.shape[1], -1)
    return np.percentile(flat, [1, 99.5], axis=1).T


def composite(crops: np.ndarray, channels: list[str], limits: np.ndarray) -> np.ndarray:
    """(N x S x S x 3) RGB in [0, 1] of crops (N x C x S x S), each channel stretched to its
    limits and added in its colour."""
    rgb = np.zeros((crops.shape[0], crops.shape[2], crops.shape[3], 3), np.float32)
    for index, channel in enumerate(channels):
        if channel not in COLOURS:
            continue
        low, high = limits[index]
        scaled = np.clip(
            (np.asarray(crops[:, index], np.float32) - low) / max(high - low, 1e-6), 0, 1
        )
        rgb += scaled[..., None] * np.asarray(COLOURS[channel][1], np.float32)
    return np.clip(rgb, 0, 1)


def gallery_figure(picked: pd.DataFrame, crops: np.ndarray, channels: list[str]):
    """One row per treatment: its random cells, then its typical ones (``crops``: the picked
    cells' crops in ``picked``'s order)."""
    plt = pyplot()
    images = composite(crops, channels, channel_limits(crops))
    treatments = list(dict.fromkeys(picked[TREATMENT]))
    columns = int(picked.groupby(TREATMENT).size().max())
    fig, axes = plt.subplots(
        len(treatments),
        columns,
        figsize=(0.9 * columns + 1.2, 0.9 * len(treatments) + 0.6),
        squeeze=False,
    )
    position = {t: 0 for t in treatments}
    kinds = [[] for _ in treatments]  # per row, the kind of each cell drawn
    for image, (treatment, kind) in zip(images, zip(picked[TREATMENT], picked["kind"])):
        row = treatments.index(treatment)
        ax = axes[row, position[treatment]]
        ax.imshow(image)
        if position[treatment] == 0:
            ax.set_ylabel(treatment, fontsize=FONT, rotation=0, ha="right", va="center")
        kinds[row].append(kind)
        position[treatment] += 1
    # "random" / "typical" over the column where each kind starts, once at the top; a row
    # whose kinds start elsewhere (a treatment with few cells) is labelled in its own row
    top = kinds[0]
    for row, drawn in enumerate(kinds):
        for column, kind in enumerate(drawn):
            starts = column == 0 or drawn[column - 1] != kind
            if starts and (row == 0 or column >= len(top) or top[column] != kind):
                axes[row, column].set_title(kind, fontsize=FONT, loc="left")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.axis("off")
    shown = ", ".join(f"{c} {COLOURS[c][0]}" for c in channels if c in COLOURS)
    heading = gallery_text(crop_unit(picked))[0]
    fig.suptitle(f"{heading}: random, then typical ({shown})", fontsize=10)
    return fig


def plot_gallery(picked: pd.DataFrame, crops: np.ndarray, channels: list[str], path) -> None:
    """Writes :func:`gallery_figure`."""
    fig = gallery_figure(picked, crops, channels)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    pyplot().close(fig)
