"""Figures of the diagnostics and report: PCA and UMAP of well profiles, cells per well, metric
bars.

All figures are small PNGs (matplotlib, Agg backend) so they embed in the HTML report. Legends
sit outside the data (right of the last panel), titles are wrapped instead of clipped, and no
text is smaller than ``FONT`` (debatch.core.plotting): ``*_figure`` functions return the
figure (tests/test_figures.py checks that), ``plot_*`` write it.
"""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pandas as pd

from debatch.core.compiled import import_with_numba_cache
from debatch.core.plotting import FONT, MARKERS, PALETTE, draw_plate, plate_shape, pyplot
from debatch.core.stats import pca
from debatch.evaluate.diagnostics import BATCH_METRICS, BIO_METRICS
from debatch.evaluate.metrics import percent_replicating, replicate_correlations
from debatch.settings import (
    BATCH,
    NEGCON,
    PLATE,
    ROLE,
    SITE_CELLS_META,
    TREATMENT,
    WELL,
    feature_columns,
)

MAX_LEGEND = 20  # categories one legend lists; with more treatments, points are coloured by role
DPI = 80


def _plot_replicates(ax, wells: pd.DataFrame) -> None:
    replicate, other = replicate_correlations(wells)
    entry = percent_replicating(wells)
    bins = np.linspace(-1, 1, 41)
    ax.hist(other, bins=bins, density=True, color="0.7", label="non-replicate pairs")
    if len(replicate):
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
        ax.set_title(
            f"{entry['value']:.0%} of replicate pairs above\n"
            "the non-replicates' 95th percentile (dashed)",
            fontsize=10,
        )
    ax.set_xlabel("Pearson correlation of two wells' profiles")
    ax.tick_params(labelsize=FONT)
    ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)


def colour_column(wells: pd.DataFrame, column: str) -> str:
    """The column a panel colours by: ``column``, or the role when it has more categories than
    a legend can list (a real screen's thousands of compounds)."""
    many = wells[column].nunique() > MAX_LEGEND
    return ROLE if column == TREATMENT and many and ROLE in wells else column


def scatter_categories(
    ax, coordinates: np.ndarray, wells: pd.DataFrame, column: str, categories=None
) -> str:
    """Points coloured (and shaped) by ``column`` (negcon grey when colouring by treatment or
    role), the legend outside the axes on the right; returns the column coloured by.
    ``categories``: every value in a fixed order, so panels of the same wells share colours."""
    column = colour_column(wells, column)
    labels = wells[column].astype(str).to_numpy()
    categories = np.unique(labels) if categories is None else list(categories)
    size = 18 if len(labels) <= 2000 else 4
    for i, label in enumerate(categories):
        chosen = labels == label
        if not chosen.any():
            continue
        negcon = column in (TREATMENT, ROLE) and (wells.loc[chosen, ROLE] == NEGCON).all()
        ax.scatter(
            coordinates[chosen, 0],
            coordinates[chosen, 1],
            s=size,
            label=label,
            color="0.75" if negcon else PALETTE[i % len(PALETTE)],
            marker=MARKERS[i % len(MARKERS)],
            edgecolors="none",
        )
    if len(categories) > MAX_LEGEND:  # only a column with no role to fall back on
        return column
    ax.legend(
        fontsize=FONT,
        markerscale=1.5 if size < 10 else 1.0,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        borderaxespad=0,
        ncol=1 + len(categories) // 13,
        title=column.removeprefix("Metadata_").lower(),
        title_fontsize=FONT,
    )
    return column


def pca_figure(wells: pd.DataFrame, title: str):
    """PCA of well profiles coloured by batch and by treatment (negcon grey), and the
    replicate-correlation histogram (replicate vs non-replicate well pairs)."""
    plt = pyplot()
    scores, explained = pca(wells[feature_columns(wells.columns)].to_numpy(np.float64))
    if scores.shape[1] < 2:
        scores = np.column_stack([scores, np.zeros(len(scores))])
        explained = np.append(explained, 0.0)
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), layout="constrained")
    _plot_replicates(axes[2], wells)
    for ax, column in zip(axes, [BATCH, TREATMENT]):
        shown = scatter_categories(ax, scores, wells, column)
        ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
        ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
        ax.set_title(f"coloured by {shown.removeprefix('Metadata_').lower()}", fontsize=10)
        ax.tick_params(labelsize=FONT)
    suptitle(fig, title)
    return fig


def plot_pca(wells: pd.DataFrame, title: str, path) -> None:
    """Writes :func:`pca_figure`."""
    _save(pca_figure(wells, title), path)


def suptitle(fig, text: str) -> None:
    """The figure's title, wrapped to its width (12 pt: about 8 characters an inch)."""
    width = max(20, int(fig.get_figwidth() * 8))
    fig.suptitle("\n".join(textwrap.wrap(text, width)), fontsize=12)


def _save(fig, path) -> None:
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)


UMAP_NEIGHBOURS = 15  # umap-learn's default n_neighbors (fewer on a screen of fewer wells)
UMAP_MIN_WELLS = 5


UMAP_EXACT_WELLS = 4096  # below this many rows umap-learn finds neighbours from every pair


def cosine_distances(values: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances (n x n), umap-learn's ``cosine`` metric on every pair: 1 for a
    zero row against any other, 0 between two zero rows and on the diagonal."""
    norms = np.linalg.norm(values, axis=1)
    unit = np.divide(values, norms[:, None], out=np.zeros_like(values), where=norms[:, None] > 0)
    distances = np.maximum(1.0 - unit @ unit.T, 0.0)
    zero = norms == 0
    distances[np.ix_(zero, zero)] = 0.0
    np.fill_diagonal(distances, 0.0)
    return distances


# pynndescent's modules whose functions, declared with signatures, compile when first called
# rather than when umap-learn is imported: the random-projection trees and the distances, most
# of which a UMAP of wells never calls (debatch.core.compiled). Its utils keep their signatures:
# compiled at a call, their random numbers would take other types and other values.
UMAP_COMPILED_WHEN_CALLED = ("pynndescent.rp_trees", "pynndescent.distances")


def import_umap():
    """umap-learn, its numba functions compiled once per environment rather than per job
    (debatch.core.compiled), those of UMAP_COMPILED_WHEN_CALLED at their first call."""
    return import_with_numba_cache("umap", compile_when_called=UMAP_COMPILED_WHEN_CALLED)


def umap_embedding(values: np.ndarray, seed: int) -> np.ndarray:
    """(n x 2) UMAP of ``values`` (umap-learn, cosine distance as the metrics use; one thread:
    the same seed gives the same map). Below UMAP_EXACT_WELLS the distances are one matrix
    product here: umap-learn would call its compiled metric once per pair from Python
    (benchmarks/umap_wells.py times both)."""
    umap = import_umap()
    values = np.asarray(values, np.float64)
    exact = len(values) < UMAP_EXACT_WELLS
    model = umap.UMAP(
        n_neighbors=min(UMAP_NEIGHBOURS, len(values) - 1),
        metric="precomputed" if exact else "cosine",
        random_state=seed,
        n_jobs=1,
    )
    with warnings.catch_warnings():  # we never invert the map
        warnings.filterwarnings("ignore", "using precomputed metric; inverse_transform")
        return np.asarray(model.fit_transform(cosine_distances(values) if exact else values))


def umap_figure(profiles: dict[str, pd.DataFrame], title: str, seed: int, max_wells: int):
    """One UMAP per correction (``profiles``: correction -> its well profiles), coloured by batch
    (top row) and by treatment (bottom row; by role past MAX_LEGEND treatments). A screen of
    more than ``max_wells`` wells is drawn from that many, chosen at random with ``seed``; a
    correction with fewer than UMAP_MIN_WELLS wells gets its reason written in its panels."""
    plt = pyplot()
    corrections = list(profiles)
    fig, axes = plt.subplots(
        2,
        len(corrections),
        figsize=(4.4 * len(corrections) + 1.6, 7.4),
        squeeze=False,
        layout="constrained",
    )
    notes = []
    first = next(iter(profiles.values()), pd.DataFrame())
    categories = {
        column: np.unique(first[colour_column(first, column)].astype(str))
        for column in (BATCH, TREATMENT)
        if len(first)
    }
    for index, correction in enumerate(corrections):
        wells = profiles[correction].reset_index(drop=True)
        if len(wells) > max_wells:
            keep = np.random.default_rng(seed).choice(len(wells), max_wells, replace=False)
            notes.append(f"{correction}: {max_wells:,} of {len(wells):,} wells drawn at random")
            wells = wells.iloc[np.sort(keep)].reset_index(drop=True)
        values = wells[feature_columns(wells.columns)].to_numpy(np.float64)
        coordinates = (
            umap_embedding(values, seed) if len(wells) >= UMAP_MIN_WELLS and values.size else None
        )
        for row, column in enumerate([BATCH, TREATMENT]):
            ax = axes[row, index]
            ax.set_xticks([])
            ax.set_yticks([])
            if coordinates is None:
                reason = f"no UMAP: {len(wells)} wells (needs {UMAP_MIN_WELLS})"
                ax.text(0.5, 0.5, reason, ha="center", va="center", transform=ax.transAxes)
                ax.set_title(correction, fontsize=10)
                continue
            last = index == len(corrections) - 1
            shown = scatter_categories(ax, coordinates, wells, column, categories.get(column))
            if not last and ax.get_legend() is not None:
                ax.get_legend().remove()  # one legend per row: the same colours in every panel
            ax.set_title(f"{correction}: by {shown.removeprefix('Metadata_').lower()}", fontsize=10)
    subtitle = f" ({'; '.join(notes)})" if notes else ""
    suptitle(fig, f"{title}{subtitle}")
    return fig


def plot_umap(
    profiles: dict[str, pd.DataFrame], title: str, path, seed: int = 0, max_wells: int = 10000
) -> None:
    """Writes :func:`umap_figure`."""
    _save(umap_figure(profiles, title, seed, max_wells), path)


def cells_per_well_figure(cells: pd.DataFrame):
    """Cells per well of every plate, laid out as the plates on one colour scale: density
    differs by batch, and a dispenser or edge problem shows as a pattern. ``cells``: one row per
    analysed cell (the crops tables) with Metadata_Plate, Metadata_Batch and Metadata_Well, or
    one row per analysed whole site with its cells in Metadata_Cells (crops.unit: site)."""
    plt = pyplot()
    grouped = cells.groupby([PLATE, BATCH, WELL], observed=True)
    counts = grouped[SITE_CELLS_META].sum() if SITE_CELLS_META in cells else grouped.size()
    wells = counts.rename("cells").reset_index()
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
            tick_every=1 if cell >= 0.2 else int(np.ceil(0.2 / cell)),
        )
        ax.set_title(f"{plate} ({on_plate[BATCH].iloc[0]})", fontsize=10)
    for ax in list(axes.flat)[len(plates) :]:
        ax.axis("off")
    bar = fig.colorbar(image, ax=axes, shrink=0.8, label="cells per well")
    bar.ax.tick_params(labelsize=FONT)
    return fig


def plot_cells_per_well(cells: pd.DataFrame, path) -> None:
    """Writes :func:`cells_per_well_figure`."""
    _save(cells_per_well_figure(cells), path)


def metric_bars_figure(entries: list[dict], title: str):
    """[0, 1] score of every metric, one bar per correction (higher is better everywhere)."""
    plt = pyplot()
    groups = [
        ("batch removal", "batch", BATCH_METRICS),
        ("biology kept", "bio", BIO_METRICS),
        ("summary", "scores", ("batch", "bio", "generalisation", "overall")),
    ]
    fig, axes = plt.subplots(
        1,
        3,
        figsize=(13, 3.8),
        gridspec_kw={"width_ratios": [5, 5, 4]},
        sharey=True,
        layout="constrained",
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
        ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=30, ha="right")
        ax.tick_params(labelsize=FONT)
        ax.set_title(heading, fontsize=10)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("score (1 = best)")
    axes[-1].legend(
        fontsize=FONT,
        title="correction",
        title_fontsize=FONT,
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        borderaxespad=0,
    )
    suptitle(fig, title)
    return fig


def plot_metric_bars(entries: list[dict], title: str, path) -> None:
    """Writes :func:`metric_bars_figure`."""
    _save(metric_bars_figure(entries, title), path)
