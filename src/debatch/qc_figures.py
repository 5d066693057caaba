"""QC pictures of a plate for the report: segmentation overlays and plate heatmaps.

Overlays show the sites a reviewer should look at first (failed sites, then sites from the
fewest to the most cells), so a wrong diameter, channel or threshold is seen before any model
is trained. Heatmaps lay cell count and focus out like the plate: edge effects, a bad column
of the dispenser or a drifting autofocus show as patterns.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from skimage.segmentation import find_boundaries

from debatch.images import read_site
from debatch.qc import COUNT, FOCUS

MAX_SIDE = 512  # px of a site shown in an overlay (the centre), so outlines stay visible


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def overlay_sites(qc: pd.DataFrame, focus_channel: str, count: int) -> pd.DataFrame:
    """Up to ``count`` sites: failed ones (worst focus first), then passed sites spread evenly
    from the fewest to the most cells."""
    failed = qc[~qc["QC_Pass"]].sort_values(f"{FOCUS}_{focus_channel}", kind="stable")[:count]
    passed = qc[qc["QC_Pass"]].sort_values([COUNT, "Metadata_Well", "Metadata_Site"], kind="stable")
    slots = min(count - len(failed), len(passed))
    spread = np.unique(np.linspace(0, len(passed) - 1, slots).round().astype(int)) if slots else []
    return pd.concat([failed, passed.iloc[spread]])


def _composite(nuclei_image: np.ndarray, cell_image: np.ndarray) -> np.ndarray:
    """RGB: cell channel grey-green, nuclei channel blue, each stretched to its 1-99.5 %."""
    def stretch(image):
        low, high = np.percentile(image, [1, 99.5])
        return np.clip((image - low) / (high - low if high > low else 1.0), 0, 1)

    cell, nucleus = stretch(cell_image), stretch(nuclei_image)
    return np.dstack([0.6 * cell, 0.8 * cell, np.maximum(0.6 * cell, nucleus)])


def plot_overlays(qc: pd.DataFrame, manifest: pd.DataFrame, masks, channels: list[str], illum,
                  nuclei_channel: str, cell_channel: str, count: int, title: str, path) -> None:
    """Sites with nuclei (cyan) and cell (yellow) outlines; failed sites titled in red."""
    plt = _pyplot()
    chosen = overlay_sites(qc, nuclei_channel, count)
    by_site = manifest.set_index(["Metadata_Well", "Metadata_Site"])
    panels = max(len(chosen), 1)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.6), squeeze=False)
    for ax, site in zip(axes[0], chosen.itertuples()):
        row = {**by_site.loc[(site.Metadata_Well, site.Metadata_Site)].to_dict(),
               "Metadata_Well": site.Metadata_Well, "Metadata_Site": site.Metadata_Site}
        images = read_site(row, channels, illum)
        picture = _composite(images[nuclei_channel], images[cell_channel])
        key = f"{site.Metadata_Well}_{site.Metadata_Site}"
        if f"{key}_nuclei" in masks.files:
            for name, colour in (("cells", (1.0, 0.85, 0.0)), ("nuclei", (0.0, 1.0, 1.0))):
                picture[find_boundaries(masks[f"{key}_{name}"], mode="inner")] = colour
        height, width = picture.shape[:2]
        top, left = max(0, (height - MAX_SIDE) // 2), max(0, (width - MAX_SIDE) // 2)
        ax.imshow(picture[top:top + MAX_SIDE, left:left + MAX_SIDE])
        status = "passed QC" if site.QC_Pass else f"FAILED {site.QC_Failed}"
        ax.set_title(f"{site.Metadata_Well} site {site.Metadata_Site}: "
                     f"{getattr(site, COUNT)} cells\n{status}",
                     fontsize=8, color="black" if site.QC_Pass else "red")
        ax.axis("off")
    if not len(chosen):
        axes[0, 0].axis("off")
    if not masks.files:
        title += " (no outlines: segment.save_masks is false)"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _row_col(well: str) -> tuple[int, int]:
    letters, number = re.fullmatch(r"([A-Za-z]+)(\d+)", well).groups()
    row = 0
    for letter in letters.upper():
        row = row * 26 + ord(letter) - ord("A") + 1
    return row - 1, int(number) - 1


def _row_name(row: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA (1536-well plates have 32 rows)."""
    return chr(ord("A") + row) if row < 26 else "A" + chr(ord("A") + row - 26)


def plot_heatmaps(qc: pd.DataFrame, focus_channel: str, title: str, path) -> None:
    """Cells per well and median focus slope per well, laid out as the plate; x = a failed site."""
    plt = _pyplot()
    wells = qc.groupby("Metadata_Well").agg(
        cells=(COUNT, "sum"), focus=(f"{FOCUS}_{focus_channel}", "median"),
        failed=("QC_Pass", lambda passed: int((~passed).sum())))
    positions = np.array([_row_col(well) for well in wells.index]).reshape(-1, 2)
    rows, cols = positions.max(axis=0) + 1 if len(positions) else (1, 1)
    size = (2 * max(3.2, 0.3 * cols + 1.6), max(2.4, 0.3 * rows + 1.2))
    fig, axes = plt.subplots(1, 2, figsize=size, squeeze=False, layout="constrained")
    panels = ((axes[0, 0], "cells", "cells per well", "viridis"),
              (axes[0, 1], "focus", f"focus: {focus_channel} spectrum slope", "magma"))
    for ax, column, label, cmap in panels:
        grid = np.full((rows, cols), np.nan)
        grid[positions[:, 0], positions[:, 1]] = wells[column]
        shown = ax.imshow(grid, cmap=cmap)
        for (row, col), failed in zip(positions, wells["failed"]):
            if failed:
                ax.text(col, row, "x", ha="center", va="center", color="red", fontsize=9,
                        fontweight="bold")
        ax.set_xticks(range(cols), [str(c + 1) for c in range(cols)], fontsize=6)
        ax.set_yticks(range(rows), [_row_name(r) for r in range(rows)], fontsize=6)
        ax.set_title(label, fontsize=8)
        fig.colorbar(shown, ax=ax, shrink=0.8)
    fig.suptitle(f"{title} (x: well with a site that failed QC)", fontsize=9)
    fig.savefig(path, dpi=80)
    plt.close(fig)
