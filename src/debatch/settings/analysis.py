"""The blocks after the images: profiles (feature selection, normalisation, corrections),
external sources of features, diagnostics, the report, optional outputs and threads per job."""

from __future__ import annotations

from .block import Block, above, at_least, between, each_one_of, one_of, rule
from .names import (
    AGGREGATES,
    CELLPROFILER,
    CORRECTIONS,
    FEATURE_KINDS,
    LEVELS,
    NORMALISATIONS,
    SELECTIONS,
)

FEATURE_SELECT = Block(
    "profiles.feature_select",
    {
        "operations": list(SELECTIONS),
        "na_cutoff": 0.05,
        "outlier_cutoff": 500.0,
        "freq_cut": 0.05,
        "unique_cut": 0.01,
        "corr_threshold": 0.9,
    },
    checks=[
        each_one_of(SELECTIONS, "operations", "feature selection operation"),
        between(0, 1, "na_cutoff", "freq_cut", "unique_cut", "corr_threshold"),
        above(0, "outlier_cutoff"),
    ],
)

PROFILES = Block(
    "profiles",
    {
        "aggregate": "median",
        "aggregate_columns": 32,
        "normalise": "mad_robustize",
        "mad_epsilon": 1e-18,
        "corrections": ["none"],
        "sphering_epsilon": 1e-2,
        "sphering_folds": 5,
        "harmony_components": 50,
        "harmony_theta": 2.0,
        "harmony_max_iter": 20,
        "harmony_clusters": None,
        "harmony_seed": 0,
        "consensus": "median",
        "reference": None,
        "feature_select": FEATURE_SELECT,
    },
    checks=[
        each_one_of(CORRECTIONS, "corrections", "correction"),
        one_of(AGGREGATES, "aggregate", "consensus"),
        one_of(NORMALISATIONS, "normalise"),
        rule(
            lambda v: isinstance(v, int) and v >= 2, "null or an integer >= 2", "harmony_clusters"
        ),
        at_least(
            1, "aggregate_columns", "harmony_components", "harmony_max_iter", "sphering_folds"
        ),
        at_least(0, "sphering_epsilon", "mad_epsilon"),
    ],
)


def _table_paths(merged: dict, name: str) -> None:
    """``path``: a table, a glob or a list of them, never missing (it has no default)."""
    if merged["path"] is None:
        raise ValueError(f"{name}.path is missing: the table's file, a glob or a list of them")
    paths = merged["path"] if isinstance(merged["path"], list) else [merged["path"]]
    if not paths or not all(isinstance(p, str) and p.strip() for p in paths):
        raise ValueError(f"{name}.path must be a file, a glob or a list of them, not {paths!r}")


def _column_names(merged: dict, name: str) -> None:
    for key in ("plate_column", "well_column"):
        if merged[key] is not None and not isinstance(merged[key], str):
            raise ValueError(f"{name}.{key} must be a column name or null, not {merged[key]!r}")


def external_block(name: str) -> Block:
    """The block of one external source ``external.{name}``: a table made elsewhere."""
    return Block(
        f"external.{name}",
        {
            "path": None,
            "level": "cells",
            "features": CELLPROFILER,
            "plate_column": None,
            "well_column": None,
        },
        checks=[
            _table_paths,
            one_of(LEVELS, "level"),
            one_of(FEATURE_KINDS, "features"),
            _column_names,
        ],
    )


DIAGNOSTICS = Block(
    "diagnostics",
    {
        "seed": 0,
        "max_folds": 5,
        "lisi_perplexity": 30.0,
        "neighbours": 15,
        "knn_neighbours": 5,
        "holdout_neighbours": 1,
        "pcr_components": 50,
        "map_null_size": 10000,
        "map_threshold": 0.05,
        "activity_weight": 0.3,
    },
    checks=[
        at_least(
            1,
            "max_folds",
            "neighbours",
            "knn_neighbours",
            "holdout_neighbours",
            "pcr_components",
            "map_null_size",
        ),
        rule(lambda v: 0 < v < 1, "in (0, 1)", "map_threshold"),
        between(0, 1, "activity_weight"),
        above(0, "lisi_perplexity"),
    ],
)

REPORT = Block(
    "report",
    {
        "title": "debatch report",
        "references": ["erm", CELLPROFILER],
        "bootstrap": 2000,
        "seed": 0,
        "gallery_cells": 5,
        "max_plate_figures": 8,
        "umap_seed": 0,
        "umap_wells": 10000,
    },
    checks=[
        at_least(100, "bootstrap"),
        at_least(1, "gallery_cells"),
        at_least(0, "max_plate_figures"),
        at_least(10, "umap_wells"),
    ],
)

OUTPUTS = Block(
    "outputs",
    {
        "anndata_cells": False,
    },
)

THREADS = Block(
    "threads",
    {
        "images": 1,
        "train": 1,
    },
    checks=[at_least(1, "images", "train")],
)
