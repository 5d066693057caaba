"""A plate's features (one job's, or gathered from its shards), checked against the cells table.

Kept apart from the measuring code so the gather job starts without importing cp_measure.
"""

from __future__ import annotations

import os

import pandas as pd
import pyarrow.parquet as pq

from debatch.core.io import ParquetStream
from debatch.settings import CELL_KEY


def gather_features(
    paths: list[str | os.PathLike],
    cells: pd.DataFrame,
    out: str | os.PathLike,
    provenance: dict | None = None,
) -> tuple[int, int]:
    """The plate's features from its shards' files, written to ``out`` a row group at a time
    (ParquetStream: a plate's table need not fit in memory), after checking that they have the
    same columns and together are the cells table's rows in order (``cells``: its
    ``CELL_KEY`` columns are enough); returns (rows, columns)."""
    schema = pq.read_schema(paths[0])
    for path in paths[1:]:
        if not pq.read_schema(path).equals(schema):
            raise ValueError(f"{path}: not the columns of {paths[0]}; rerun its features job")
    keys = pd.concat([pd.read_parquet(path, columns=CELL_KEY) for path in paths])
    check_cells_order(keys.reset_index(drop=True), cells)
    with ParquetStream(out, schema, provenance) as stream:
        for path in paths:  # pyarrow's pre-buffering keeps the bytes of the row group read
            shard = pq.ParquetFile(path, pre_buffer=False)  # beside the table made of them
            for group in range(shard.num_row_groups):
                stream.write(shard.read_row_group(group))
    return stream.rows, len(stream.schema)


def check_cells_order(keys: pd.DataFrame, cells: pd.DataFrame) -> None:
    """Check that ``keys`` (the ``CELL_KEY`` columns of a plate's features) are the cells
    table's rows in order: what every later stage reads the features by."""
    if len(keys) != len(cells) or not keys[CELL_KEY].reset_index(drop=True).equals(
        cells[CELL_KEY].reset_index(drop=True)
    ):
        raise ValueError(
            f"the features hold {len(keys)} cells that are not the cells table's "
            f"{len(cells)} in order; rerun the features stage of this plate"
        )
