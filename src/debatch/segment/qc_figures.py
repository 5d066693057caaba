"""QC pictures of a plate for the report: segmentation overlays and plate heatmaps.

Overlays show the sites a reviewer should look at first (failed sites, then sites from the
fewest to the most cells), so a wrong diameter, channel or threshold is seen before any model
is trained. Heatmaps lay cell count and focus out like the plate: edge effects, a bad column
of the dispenser or a drifting autofocus show as patterns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from skimage.segmentation import find_boundaries

from debatch.core.images import read_site
from debatch.core.plotting import FONT, draw_plate, plate_shape, pyplot
from debatch.segment.qc import COUNT, FOCUS_DEVIATION
from debatch.settings import QC_PASS, SITE, SITE_KEY, WELL, Channels

_MAX_SIDE = 512  # px of a site shown in an overlay (the centre), so outlines stay visible


def overlay_sites(qc: pd.DataFrame, count: int) -> pd.DataFrame:
    """Up to ``count`` sites: failed ones (worst focus first), then passed sites spread evenly
    from the fewest to the most cells."""
    failed = qc[~qc[QC_PASS]].sort_values(FOCUS_DEVIATION, kind="stable")[:count]
    passed = qc[qc[QC_PASS]].sort_values([COUNT, *SITE_KEY], kind="stable")
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


def plot_overlays(
    qc: pd.DataFrame,
    manifest: pd.DataFrame,
    masks,
    channels: Channels,
    illum,
    count: int,
    title: str,
    path,
) -> None:
    """Sites with nuclei (cyan) and cell (yellow) outlines; failed sites titled in red."""
    plt = pyplot()
    chosen = overlay_sites(qc, count)
    by_site = manifest.set_index(SITE_KEY)
    panels = max(len(chosen), 1)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.6), squeeze=False)
    for ax, site in zip(axes[0], chosen.itertuples()):
        row = {
            **by_site.loc[(site.Metadata_Well, site.Metadata_Site)].to_dict(),
            WELL: site.Metadata_Well,
            SITE: site.Metadata_Site,
        }
        images = read_site(row, channels.names, illum)
        picture = _composite(images[channels.nuclei], images[channels.cell])
        key = f"{site.Metadata_Well}_{site.Metadata_Site}"
        if f"{key}_nuclei" in masks.files:
            for name, colour in (("cells", (1.0, 0.85, 0.0)), ("nuclei", (0.0, 1.0, 1.0))):
                picture[find_boundaries(masks[f"{key}_{name}"], mode="inner")] = colour
        height, width = picture.shape[:2]
        top, left = max(0, (height - _MAX_SIDE) // 2), max(0, (width - _MAX_SIDE) // 2)
        ax.imshow(picture[top : top + _MAX_SIDE, left : left + _MAX_SIDE])
        status = "passed QC" if site.QC_Pass else f"FAILED {site.QC_Failed}"
        ax.set_title(
            f"{site.Metadata_Well} site {site.Metadata_Site}: "
            f"{getattr(site, COUNT)} cells\n{status}",
            fontsize=FONT,
            color="black" if site.QC_Pass else "#D55E00",  # Okabe-Ito vermillion
        )
        ax.axis("off")
    if not len(chosen):
        axes[0, 0].axis("off")
    if not masks.files:
        title += " (no outlines: segment.save_masks is false)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_heatmaps(qc: pd.DataFrame, focus_channel: str, title: str, path) -> None:
    """Cells per well and median focus per well (robust SDs from what QC predicts for the site),
    laid out as the plate; x = a well with a failed site."""
    plt = pyplot()
    wells = qc.groupby(WELL).agg(
        cells=(COUNT, "sum"),
        focus=(FOCUS_DEVIATION, "median"),
        failed=(QC_PASS, lambda passed: int((~passed).sum())),
    )
    rows, cols = plate_shape(wells.index)
    size = (2 * max(3.4, 0.3 * cols + 1.8), max(2.6, 0.3 * rows + 1.4))
    fig, axes = plt.subplots(1, 2, figsize=size, squeeze=False, layout="constrained")
    panels = (
        (axes[0, 0], "cells", "cells per well", "viridis"),
        (
            axes[0, 1],
            "focus",
            f"focus of {focus_channel}:\nSDs from the plate's prediction",
            "magma",
        ),
    )
    failed = set(wells.index[wells["failed"] > 0])
    for ax, column, label, cmap in panels:
        shown = draw_plate(ax, wells[column], (rows, cols), cmap, marked=failed)
        ax.set_title(label, fontsize=FONT)
        fig.colorbar(shown, ax=ax, shrink=0.8).ax.tick_params(labelsize=FONT)
    fig.suptitle(f"{title} (x: well with a site that failed QC)", fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)
