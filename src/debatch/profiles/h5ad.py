"""Profiles as AnnData (``.h5ad``), so scanpy, scib and the rest of scverse open them without
glue: obs = the ``Metadata_`` columns (text as categoricals, AnnData's convention), var = the
feature names, X = the features as float32, rows as in the table, and ``uns["debatch"]`` = how
it was made (debatch.core.provenance, as JSON text). One writer for wells and for cells.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from debatch.core.io import atomic_path
from debatch.core.provenance import KEY, encode
from debatch.settings import feature_columns


def to_anndata(table: pd.DataFrame, provenance: dict | None = None, features=None):
    """AnnData of a profiles table (wells or cells): ``features`` (default: every feature
    column) become X, the ``Metadata_`` columns obs."""
    import anndata

    every_feature = set(feature_columns(table.columns))
    if features is None:
        features = [c for c in table.columns if c in every_feature]
    features = list(features)
    obs = table[[c for c in table.columns if c not in every_feature]]
    obs = obs.reset_index(drop=True)
    for column in obs:
        if not pd.api.types.is_numeric_dtype(obs[column]):
            obs[column] = pd.Categorical(obs[column].astype(object))
    obs.index = pd.Index([str(i) for i in range(len(obs))], dtype=object)
    adata = anndata.AnnData(
        X=table[features].to_numpy(np.float32),
        obs=obs,
        var=pd.DataFrame(index=pd.Index(features, dtype=object)),
    )
    if provenance is not None:
        adata.uns[KEY] = encode(provenance).decode()
    return adata


def write_h5ad(
    table: pd.DataFrame, path: str | os.PathLike, provenance: dict | None = None, features=None
):
    """``table`` as an .h5ad file (see to_anndata), written atomically."""
    adata = to_anndata(table, provenance, features)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
