"""A plate's features (one job's, or gathered from its shards), checked against the cells table.

Kept apart from the measuring code so the gather job starts without importing cp_measure.
"""

from __future__ import annotations

import os

import pandas as pd

from debatch.core.shards import gather_tables
from debatch.settings import OBJECT, SITE_KEY


def gather_features(paths: list[str | os.PathLike], cells: pd.DataFrame) -> pd.DataFrame:
    """The plate's features from its shards, checked to be the cells table's rows in order."""
    return check_cells_order(gather_tables(paths), cells)


def check_cells_order(table: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """``table`` (a plate's features), checked to hold the cells table's rows in order: what
    every later stage reads them by."""
    key = [*SITE_KEY, OBJECT]
    if len(table) != len(cells) or not table[key].reset_index(drop=True).equals(
        cells[key].reset_index(drop=True)
    ):
        raise ValueError(
            f"the features hold {len(table)} cells that are not the cells table's "
            f"{len(cells)} in order; rerun the features stage of this plate"
        )
    return table
