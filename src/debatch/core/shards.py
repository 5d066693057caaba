"""A plate's sites split into shards (one job each) and the shards' outputs gathered back.

Shard k of K holds the k-th contiguous block of the plate's sites in (well, site) order, so
concatenating the shards' outputs in shard order reproduces the one-job result exactly: the
per-plate files are identical whatever K (tests/test_shards.py checks 1 vs 3). Segmentation,
crops and features all shard this way; with one shard the job writes the plate's files itself.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from debatch.core.io import NpzWriter, atomic_path, open_npy
from debatch.settings import SITE_KEY


def shard_sites(manifest: pd.DataFrame, shards: int, shard: int) -> pd.DataFrame:
    """Rows of shard ``shard`` (0-based) of ``shards``: a contiguous block of sorted sites."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} does not exist: segment.shards is {shards}")
    ordered = manifest.sort_values(SITE_KEY, kind="stable").reset_index(drop=True)
    return ordered.iloc[np.array_split(np.arange(len(ordered)), shards)[shard]]


def gather_tables(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """Shard tables concatenated in shard order (empty shards skipped: they carry no dtypes)."""
    tables = [pd.read_parquet(path) for path in paths]
    filled = [table for table in tables if len(table)]
    return pd.concat(filled, ignore_index=True) if filled else tables[0]


def gather_npz(paths: list[str | os.PathLike], out: str | os.PathLike) -> int:
    """Merge shard .npz files into ``out`` one array at a time; returns the array count."""
    count = 0
    with NpzWriter(out) as writer:
        for path in paths:
            with np.load(path) as stored:
                for name in stored.files:
                    writer.add(name, stored[name])
                    count += 1
    return count


def gather_npy(
    paths: list[str | os.PathLike], out: str | os.PathLike, rows_per_copy: int = 4096
) -> tuple:
    """Concatenate shard .npy arrays (same trailing shape) into ``out``; returns its shape."""
    parts = [np.load(path, mmap_mode="r") for path in paths]
    shape = (sum(len(part) for part in parts), *parts[0].shape[1:])
    with atomic_path(out) as tmp:
        array = open_npy(tmp, parts[0].dtype, shape)
        start = 0
        for part in parts:
            for first in range(0, len(part), rows_per_copy):
                block = part[first : first + rows_per_copy]
                array[start + first : start + first + len(block)] = block
            start += len(part)
        array.flush()
        del array
    return shape
