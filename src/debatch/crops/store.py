"""Opening a plate's crops: the memory-mapped array and the table whose row i describes crop i.

The pair ``crops/{plate}.npy`` + ``crops/{plate}.parquet`` is the crops stage's contract; every
reader (training, embedding, the report's gallery, a notebook) opens it here, so a mismatched pair
fails the same way everywhere, naming both files. A plain memory-mapped ``.npy`` rather than a
zarr store: any numpy opens it without a new dependency, slicing it reads only those crops, and
the table (pandas) carries the metadata a viewer needs: ``open_plate(results, plate)``.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from debatch.settings import OBJECT


def open_crops(
    npy_path: str | os.PathLike, parquet_path: str | os.PathLike
) -> tuple[np.ndarray, pd.DataFrame]:
    """(N x C x S x S read-only memmap, N-row table) of one plate's crops."""
    crops = np.load(npy_path, mmap_mode="r")
    table = pd.read_parquet(parquet_path)
    if crops.ndim != 4 or crops.shape[0] != len(table):
        raise ValueError(
            f"{npy_path} has shape {crops.shape} but {parquet_path} has "
            f"{len(table)} rows; expected N x C x S x S with N rows"
        )
    return crops, table


def open_plate(results: str | os.PathLike, plate: str) -> tuple[np.ndarray, pd.DataFrame]:
    """A plate's crops and table from a results folder: ``open_plate("results", "plate01")``."""
    folder = os.path.join(results, "crops")
    return open_crops(
        os.path.join(folder, f"{plate}.npy"), os.path.join(folder, f"{plate}.parquet")
    )


def crop_unit(table: pd.DataFrame) -> str:
    """What a crops table's rows are: ``cell`` (a crop around a cell, which has its
    ``Metadata_ObjectNumber``) or ``site`` (a whole site, ``crops.unit: site``)."""
    return "cell" if OBJECT in table.columns else "site"
