"""Atomic file writing shared by every stage.

A stage that is killed half-way must never leave a file that looks complete, so every
output is written under a temporary name in the same folder and renamed at the end
(rename is atomic on POSIX within one filesystem). A write that fails because of the disk
(full, over quota, read-only) is a WriteError naming the output and the cause, and its
temporary file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import itertools
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from debatch.core.provenance import KEY, encode


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
# the disk's failures, not the data's or the code's: a full disk, a quota, a file size limit,
# a read-only mount
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


class WriteError(OSError):
    """An output the disk would not take; the message names the file and the cause."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary name keeps the final suffix so libraries that pick a format from the
    extension (numpy, matplotlib, tifffile) behave the same. Temporaries of ``path`` that a
    killed job left behind are removed first (one job writes a given output at a time).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.stem)}.{'?' * 8}.tmp{path.suffix}"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs should be group-readable
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        if error.errno not in _DISK_ERRNOS:  # a WriteError has none: it passes through
            raise
        raise WriteError(f"cannot write {path}: {os.strerror(error.errno)}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def open_npy(path: str | os.PathLike, dtype, shape: tuple) -> np.memmap:
    """A new .npy memory-mapped for writing, its blocks reserved on disk first: writing into
    a sparse file's pages on a full disk kills the process with SIGBUS and no message, while a
    reservation fails at once with "No space left on device" (atomic_path names the file).
    Where the filesystem cannot reserve blocks (NFS before 4.2, some FUSE mounts) glibc's
    posix_fallocate writes a zero into every block instead: the file is written once more in
    full over the network before the data, a cost paid for the clear message."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # no fallocate there
                raise
    return array


def write_parquet(
    df: pd.DataFrame, path: str | os.PathLike, provenance: dict | None = None
) -> None:
    """``df`` as Parquet (no index): :func:`write_parquet_table`."""
    write_parquet_table(pa.Table.from_pandas(df, preserve_index=False), path, provenance)


def write_parquet_table(
    table: pa.Table, path: str | os.PathLike, provenance: dict | None = None
) -> None:
    """``table`` as Parquet, atomically, laid out as :class:`ParquetStream` writes it;
    ``provenance`` (debatch.core.provenance) goes into the file's key-value metadata."""
    with ParquetStream(path, table.schema, provenance) as stream:
        stream.write(table)


# The rows a Parquet row group holds: about this many bytes of fixed-width values. A streamed
# table's writer holds a few row groups, whatever the table's length; a smaller group holds
# less, but a reader then reads each column in more chunks.
ROW_GROUP_BYTES = 256 * 2**20


def parquet_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` as debatch writes it: float columns required.

    A nullable column stores a definition level per value, which the reader decodes before the
    values: a required one reads in about half the time, and every later stage reads the
    feature columns again (``benchmarks/aggregate.py``). NaN is a value there, "not
    measurable" as CellProfiler writes it, not a null (:func:`_nan_for_null`).
    """
    return pa.schema(
        [
            field.with_nullable(False) if pa.types.is_floating(field.type) else field
            for field in schema
        ],
        metadata=schema.metadata,
    )


def _nan_for_null(table: pa.Table) -> pa.Table:
    """``table`` with NaN where a float column holds a null (pandas' NaN becomes a null in
    Arrow), so that it fits :func:`parquet_schema`."""
    columns = [
        pc.fill_null(column, np.nan)
        if pa.types.is_floating(column.type) and column.null_count
        else column
        for column in table.columns
    ]
    return pa.Table.from_arrays(columns, schema=parquet_schema(table.schema))


class ParquetStream:
    """A Parquet file written a block of rows at a time, renamed into place on a clean exit
    (atomic_path), for tables too large to hold whole: a full plate's CellProfiler features
    are gigabytes. Rows are buffered and written as row groups of a fixed number of rows
    (``ROW_GROUP_BYTES`` of values), so the writer holds a few row groups (the buffered blocks,
    their concatenation, Arrow's table of it) whatever the table's length, and the file's
    layout depends on its rows alone, not on how they were handed in: a plate's features
    measured in one job or gathered from shards are the same file.

    Buffered pandas blocks are converted to Arrow when a row group is written, a row group's
    at once: Arrow columns of a few rows each (a site's cells) cost several times their
    values in allocations and headers.

    Float columns are required (:func:`parquet_schema`) and plain-encoded: pyarrow
    dictionary-encodes every column's first megabyte by default, which suits labels and
    counts but not measured floats (nearly all distinct): the dictionary and its indices are
    larger than the values and slower to decode. Other columns keep the dictionary.
    ``provenance`` (debatch.core.provenance) goes into the file's key-value metadata.
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, provenance: dict | None = None):
        metadata = dict(schema.metadata or {})
        if provenance is not None:
            metadata[KEY.encode()] = encode(provenance)
        self.schema = parquet_schema(schema).with_metadata(metadata)
        self.rows = 0
        self._rows_per_group = max(1, ROW_GROUP_BYTES // _row_bytes(self.schema))
        self._pending: list[pd.DataFrame | pa.Table] = []  # in order, not yet written
        self._pending_rows = 0
        floats = {field.name for field in self.schema if pa.types.is_floating(field.type)}
        self._atomic = atomic_path(path)
        tmp = self._atomic.__enter__()
        try:
            self._writer = pq.ParquetWriter(
                tmp, self.schema, use_dictionary=[n for n in self.schema.names if n not in floats]
            )
        except BaseException as error:
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise

    def write(self, rows: pd.DataFrame | pa.Table) -> None:
        """Append ``rows`` (the schema's columns, in its order)."""
        self._pending.append(rows)
        self._pending_rows += len(rows)
        self.rows += len(rows)
        if self._pending_rows >= self._rows_per_group:
            self._write_groups(final=False)

    def _write_groups(self, final: bool) -> None:
        """Every whole row group of the pending rows (and, when ``final``, the rest)."""
        tables = []
        for is_frame, pieces in itertools.groupby(
            self._pending, lambda piece: isinstance(piece, pd.DataFrame)
        ):
            if is_frame:  # one conversion of the row group's blocks, not one per block
                pieces = [pa.Table.from_pandas(pd.concat(pieces), preserve_index=False)]
            tables += [_nan_for_null(piece).cast(self.schema) for piece in pieces]
        self._pending = []  # the blocks, now in ``tables``
        table = pa.concat_tables(tables)
        del tables
        groups, rest = divmod(len(table), self._rows_per_group)
        written = (groups + (final and rest > 0)) * self._rows_per_group
        self._writer.write_table(table.slice(0, written), row_group_size=self._rows_per_group)
        rest = table.slice(written).combine_chunks()  # a copy: the slice would pin the group
        self._pending, self._pending_rows = ([rest] if len(rest) else []), len(rest)

    def __enter__(self) -> ParquetStream:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """Write the last rows and rename the file into place; on any failure (the caller's,
        a last block that does not fit the schema, a full disk) close the writer and remove
        the temporary file instead."""
        failed = error
        try:
            if failed is None and self._pending_rows:
                self._write_groups(final=True)
        except BaseException as writing:
            failed = writing
        try:
            self._writer.close()
        except BaseException as closing:
            failed = failed or closing
        if failed is None:
            self._atomic.__exit__(None, None, None)
            return
        self._atomic.__exit__(type(failed), failed, failed.__traceback__)  # a disk's WriteError
        if failed is not error:
            raise failed


def _row_bytes(schema: pa.Schema) -> int:
    """Bytes of one row's values: fixed-width columns' widths, 16 for a string or the like."""
    widths = [
        field.type.bit_width // 8 if pa.types.is_primitive(field.type) else 16 for field in schema
    ]
    return max(1, sum(widths))


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


class NpzWriter:
    """An .npz written one array at a time (np.savez_compressed's format), renamed on close, so
    a job streams label images to disk instead of holding a plate's worth in memory. Deflate
    at level 3, not zlib's default 6: a dense 1080 px site's two label images compress in
    about a third of the time and read back faster, in files under twice the size."""

    def __init__(self, path: str | os.PathLike):
        self._atomic = atomic_path(path)
        self._zip = zipfile.ZipFile(
            self._atomic.__enter__(), "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=3
        )

    def add(self, name: str, array: np.ndarray) -> None:
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            self._zip.close()
        except OSError as closing:  # e.g. the disk filled up as the archive was finished
            if error is None:
                self._atomic.__exit__(type(closing), closing, closing.__traceback__)
                raise
        self._atomic.__exit__(kind, error, traceback)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
