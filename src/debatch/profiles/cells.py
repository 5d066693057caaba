"""Per-cell profiles of one plate and one source, the rows and columns the well profiles are
made from: a model's embeddings as they are; CellProfiler features only for the crops table's
cells (those every CNN embeds) and without positional features (debatch.profiles.wells)."""

from __future__ import annotations

import pyarrow.parquet as pq

from debatch.profiles.wells import profile_columns, profiled_rows
from debatch.settings import feature_columns


def cell_profiles(path, cell_table=None):
    """(cells, feature names) of a per-cell table; ``cell_table``: the plate's crops table
    when ``path`` holds CellProfiler features (NaN kept: "not measurable")."""
    if cell_table is None:
        cells = pq.read_table(path).to_pandas()
        return cells, feature_columns(cells.columns)
    features = profile_columns(path)
    names = pq.ParquetFile(path).schema_arrow.names
    every_feature = set(feature_columns(names))
    metadata = [n for n in names if n not in every_feature]
    table = pq.read_table(path, columns=metadata + features)
    return table.take(profiled_rows(path, cell_table)).to_pandas(), features
