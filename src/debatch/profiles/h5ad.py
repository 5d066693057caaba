"""Well profiles as AnnData (``.h5ad``), so scanpy, scib and the rest of scverse open them
without glue: obs = the ``Metadata_`` columns (text as categoricals, AnnData's convention),
var = the feature names, X = the features as float32, rows as in the Parquet beside it, and
``uns["debatch"]`` = how it was made (debatch.core.provenance, as JSON text).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from debatch.core.io import atomic_path
from debatch.core.provenance import KEY, encode
from debatch.settings import feature_columns


def wells_anndata(wells: pd.DataFrame, provenance: dict | None = None):
    """AnnData of a profiles table (one row per well)."""
    import anndata

    features = feature_columns(wells.columns)
    obs = wells.drop(columns=features).reset_index(drop=True)
    for column in obs:
        if not pd.api.types.is_numeric_dtype(obs[column]):
            obs[column] = pd.Categorical(obs[column].astype(object))
    obs.index = pd.Index([str(i) for i in range(len(obs))], dtype=object)
    adata = anndata.AnnData(
        X=wells[features].to_numpy(np.float32),
        obs=obs,
        var=pd.DataFrame(index=pd.Index(features, dtype=object)),
    )
    if provenance is not None:
        adata.uns[KEY] = encode(provenance).decode()
    return adata


def write_h5ad(wells: pd.DataFrame, path: str | os.PathLike, provenance: dict | None = None):
    """``wells`` as an .h5ad file, written atomically."""
    adata = wells_anndata(wells, provenance)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
