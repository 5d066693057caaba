"""External sources: a table of cells (or wells) measured elsewhere, CytoTable's CellProfiler
Parquet or a model's embeddings (DeepProfiler's exports), as per-plate tables debatch profiles
like its own.

The table's plate and well name each row; everything else about a well (batch, treatment, role,
the other platemap columns) comes from the plate sheet and the platemaps, never from the table,
so an external source's wells carry exactly the metadata of the pipeline's own sources and a
stale or differently spelt treatment column cannot split a treatment in two. The table's other
metadata is left out. Plates and wells must match: a plate the sheet lacks, a plate of the sheet
the table lacks (its sources would describe different screens, and the ranking would compare
them on different batches) or a well its platemap lacks is an error naming them, found before
any plate is written. Parquet is read a plate at a time (the plate and well columns first);
a CSV is read whole, once.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from debatch.core.wells import normalise_well
from debatch.ingest.manifest import platemap_metadata
from debatch.settings import (
    BATCH,
    CELLPROFILER,
    METADATA,
    OBJECT_RELATIONS,
    OBJECTS,
    PLATE,
    POSITIONAL_FEATURES,
    WELL,
)

log = logging.getLogger(__name__)


def _candidates(name: str) -> list[str]:
    """Where tables name a plate or well: pycytominer's Metadata_Plate, CytoTable's
    Image_Metadata_Plate, and either after a merge that suffixed it (_x)."""
    return [f"{image}Metadata_{name}{suffix}" for suffix in ("", "_x") for image in ("", "Image_")]


PLATE_COLUMNS, WELL_COLUMNS = _candidates("Plate"), _candidates("Well")
TABLE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": ",", ".tsv": "\t"}


@dataclass
class _Table:
    """One file of the table: its plate, well and feature columns, and each row's plate (as
    written, and as the sheet names it) and well (normalised)."""

    path: str
    plate: str
    well: str
    features: list[str]
    keys: pd.DataFrame  # columns raw (the plate as stored), plate, well


def _find(names: list[str], given: str | None, candidates: list[str], key: str, path) -> str:
    """The column naming plates (or wells): ``given``, else the first candidate present."""
    if given is not None:
        if given not in names:
            raise ValueError(f"external table {path} has no column {given!r} ({key})")
        return given
    found = next((c for c in candidates if c in names), None)
    if found is None:
        raise ValueError(
            f"external table {path} has none of the columns {candidates}; name yours with {key}"
        )
    return found


def _is_number(field: pa.Field) -> bool:
    return pa.types.is_integer(field.type) or pa.types.is_floating(field.type)


def _features(schema: pa.Schema, kind: str, keys: tuple[str, str], path) -> list[str]:
    """CellProfiler: the Nuclei, Cells and Cytoplasm measurements (pycytominer's compartments)
    without where a cell lies or which object it is; embedding: every column that is not
    ``Metadata_`` (pycytominer's convention) nor the plate or well."""
    names = [n for n in schema.names if n not in keys and not n.startswith(METADATA)]
    if kind == CELLPROFILER:
        left_out = POSITIONAL_FEATURES + OBJECT_RELATIONS
        names = [
            n
            for n in names
            if n.split("_")[0] in OBJECTS and not any(part in n for part in left_out)
        ]
    if not names:
        hint = f" ({'_..., '.join(OBJECTS)}_...; other features: embedding)"
        raise ValueError(
            f"external table {path} has no {kind} features{hint * (kind == CELLPROFILER)}"
        )
    text = [n for n in names if not _is_number(schema.field(n))]
    if text:
        raise ValueError(
            f"external table {path}: feature column(s) {text[:3]} are not numbers; name them "
            f"{METADATA}... to keep them out of the features"
        )
    return names


def _suffix(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in TABLE_FORMATS:
        raise ValueError(f"external table {path}: not Parquet or CSV ({sorted(TABLE_FORMATS)})")
    return suffix


def _is_csv(path: str) -> bool:
    return TABLE_FORMATS[_suffix(path)] != "parquet"


def _csv_text(path: str) -> dict:
    """A CSV's metadata columns, read as text: names as written (plate 001 is not plate 1)."""
    header = pd.read_csv(path, sep=TABLE_FORMATS[_suffix(path)], nrows=0).columns
    return {c: str for c in header if "Metadata_" in c}


def _schema(path: str) -> pa.Schema:
    """The file's columns and types (a CSV's as its first thousand rows type them)."""
    if not _is_csv(path):
        return pq.read_schema(path)
    head = pd.read_csv(path, sep=TABLE_FORMATS[_suffix(path)], nrows=1000, dtype=_csv_text(path))
    return pa.Schema.from_pandas(head, preserve_index=False)


@functools.lru_cache(maxsize=1)
def _read_csv(path: str, text: tuple[str, ...]) -> pd.DataFrame:
    """A CSV or TSV whole (cached: one file may hold every plate), ``text`` columns as text."""
    dtype = {**_csv_text(path), **{c: str for c in text}}
    return pd.read_csv(path, sep=TABLE_FORMATS[_suffix(path)], dtype=dtype)


def _read(path: str, columns: list[str], keys: tuple[str, str], raw=None) -> pd.DataFrame:
    """``columns`` of a file (``keys``: its plate and well columns); only the rows whose
    plate is one of ``raw`` (as stored) when given."""
    plate = keys[0]
    if _is_csv(path):
        table = _read_csv(path, keys)
        rows = table[plate].isin(raw) if raw is not None else slice(None)
        return table.loc[rows, columns].reset_index(drop=True)
    filters = [(plate, "in", list(raw))] if raw is not None else None
    return pq.read_table(path, columns=columns, filters=filters).to_pandas()


def _well_names(raw: pd.Series, path) -> pd.Series:
    """Wells as debatch names them (B7, b07 -> B07), each distinct name normalised once."""
    codes, names = pd.factorize(raw.astype(str))
    try:
        normal = np.array([normalise_well(name) for name in names], dtype=object)
    except ValueError as error:
        raise ValueError(f"external table {path}: {error}") from None
    return pd.Series(normal[codes], index=raw.index)


def _open(path: str, spec: Mapping) -> _Table:
    """A file's columns found and its rows' plates and wells read."""
    schema = _schema(path)
    plate = _find(schema.names, spec["plate_column"], PLATE_COLUMNS, "plate_column", path)
    well = _find(schema.names, spec["well_column"], WELL_COLUMNS, "well_column", path)
    features = _features(schema, spec["features"], (plate, well), path)
    keys = _read(path, [plate, well], (plate, well))
    if keys.isna().any().any():
        raise ValueError(f"external table {path} has rows without a plate or well")
    keys = pd.DataFrame(
        {
            "raw": keys[plate],
            "plate": keys[plate].astype(str),
            "well": _well_names(keys[well], path),
        }
    )
    log.info(
        "%s: %d rows, plate column %s, well column %s, %d %s features",
        *(path, len(keys), plate, well, len(features), spec["features"]),
    )
    return _Table(path, plate, well, features, keys)


def _check_plates(tables: list[_Table], platemaps: Mapping[str, pd.DataFrame]) -> None:
    """Every plate of the sheet in the table, no other plate, no well its platemap lacks."""
    found = pd.concat([t.keys[["plate", "well"]] for t in tables]).drop_duplicates()
    where = ", ".join(t.path for t in tables)
    unknown = sorted(set(found["plate"]) - set(platemaps))
    if unknown:
        raise ValueError(
            f"external table {where}: plate(s) {unknown[:5]} are not on the plate sheet "
            f"({len(unknown)} in all); leave them out of the table or add them to the sheet"
        )
    missing = [p for p in platemaps if p not in set(found["plate"])]
    if missing:
        raise ValueError(
            f"external table {where} has no rows of plate(s) {missing[:5]} of the plate sheet "
            f"({len(missing)} in all): every source must describe the same plates"
        )
    for plate, wells in found.groupby("plate")["well"]:
        strays = sorted(set(wells) - set(platemaps[plate]["well"]))
        if strays:
            raise ValueError(
                f"external table {where}: plate {plate} well(s) {strays[:5]} are not on its "
                f"platemap ({len(strays)} in all)"
            )


def _same_features(tables: list[_Table]) -> list[str]:
    first = tables[0]
    for table in tables[1:]:
        if table.features != first.features:
            other = sorted(set(table.features) ^ set(first.features))[:3] or ["(their order)"]
            raise ValueError(
                f"external tables {first.path} and {table.path} differ in features: {other}"
            )
    return first.features


def _plate_rows(tables: list[_Table], plate: str, level: str) -> pd.DataFrame:
    """A plate's rows from every file holding it: well (normalised) + features, float32."""
    parts = []
    for table in tables:
        held = table.keys["plate"] == plate
        if not held.any():
            continue
        raw = pd.unique(table.keys.loc[held, "raw"])
        rows = _read(table.path, table.features, (table.plate, table.well), raw)
        wells = pd.DataFrame({WELL: table.keys.loc[held, "well"].to_numpy()})
        parts.append(pd.concat([wells, rows.astype(np.float32)], axis=1))
    rows = pd.concat(parts, ignore_index=True)
    if level == "wells" and rows[WELL].duplicated().any():
        raise ValueError(
            f"external table (level: wells): plate {plate} has more than one row for well(s) "
            f"{sorted(set(rows.loc[rows[WELL].duplicated(), WELL]))[:5]}"
        )
    return rows


def external_cells(
    paths: list[str], spec: Mapping, plates: Mapping[str, tuple[str, pd.DataFrame]]
) -> Iterator[tuple[str, pd.DataFrame]]:
    """(plate, its table) for every plate of ``plates`` (plate -> (batch, platemap)): the
    plate's rows of the files ``paths`` with debatch's metadata columns (plate, batch, the
    platemap's) and the features as float32. ``spec``: the source's block of ``external``
    (settings.external_block). Every file is checked before the first plate is yielded."""
    tables = [_open(path, spec) for path in paths]
    _check_plates(tables, {plate: platemap for plate, (_, platemap) in plates.items()})
    features = _same_features(tables)
    for plate, (batch, platemap) in plates.items():
        rows = _plate_rows(tables, plate, spec["level"])
        metadata = platemap_metadata(platemap)
        table = rows[[WELL]].merge(metadata, on=WELL, how="left", validate="many_to_one")
        table.insert(0, BATCH, batch)
        table.insert(0, PLATE, plate)
        yield plate, pd.concat([table, rows[features]], axis=1)
