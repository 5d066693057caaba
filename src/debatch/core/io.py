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
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
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
    """``df`` as Parquet (no index); ``provenance`` (debatch.core.provenance) goes into the
    file's key-value metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if provenance is not None:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), KEY.encode(): encode(provenance)}
        )
    write_parquet_table(table, path)


def write_parquet_table(table: pa.Table, path: str | os.PathLike) -> None:
    """``table`` as Parquet, atomically; float columns plain-encoded, and required where they
    hold no null.

    pyarrow dictionary-encodes every column's first megabyte by default, which suits labels and
    counts but not measured floats (nearly all distinct): the dictionary and its indices are
    larger than the values and slower to decode. A nullable column stores a definition level
    per value, which the reader decodes before the values: a required one (NaN is a value, not
    a null) reads in about half the time. Every later stage reads the feature columns again
    (``benchmarks/aggregate.py``). Other columns keep the dictionary and their nullability.
    """
    floats = [pa.types.is_floating(field.type) for field in table.schema]
    schema = pa.schema(
        [
            field.with_nullable(False) if is_float and column.null_count == 0 else field
            for field, column, is_float in zip(table.schema, table.columns, floats)
        ],
        metadata=table.schema.metadata,
    )
    table = pa.Table.from_arrays(table.columns, schema=schema)
    dictionary = [field.name for field, is_float in zip(schema, floats) if not is_float]
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, use_dictionary=dictionary)


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
