"""Profiles as AnnData (``.h5ad``), laid out as scanpy users expect so scanpy, scib and the rest
of scverse open them without glue:

- ``obs``: the ``Metadata_`` columns (text as categoricals), named by what a row is: a well
  ``{plate}_{well}``, a cell ``{plate}_{well}_{site}_{object}``, a treatment by its name;
- ``var``: the features, with ``compartment``, ``module`` and ``channel`` for CellProfiler's
  (``Cells_Intensity_MeanIntensity_DNA`` -> Cells, Intensity, DNA; a correlation names both
  channels), empty for embeddings;
- ``X``: the features as float32; ``obsm``: ``X_pca`` and, for a source's wells, each
  correction as ``X_{correction}`` (``X_harmony``, ``X_sphering``) beside the uncorrected X;
- ``uns["debatch"]``: how it was made (debatch.core.provenance) as a nested dict.

One writer for wells, cells and consensus tables.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from debatch.core.io import atomic_path
from debatch.core.provenance import KEY
from debatch.core.stats import pca
from debatch.settings import DOSE, OBJECT, PLATE, SITE, TREATMENT, WELL, feature_columns

# what names a row, most specific last: a well is plate + well, a cell adds site and object
ROW_NAME = (PLATE, WELL, SITE, OBJECT)
COMPARTMENTS = ("Cells", "Cytoplasm", "Nuclei")
PCA_COMPONENTS = 50


def obs_names(obs: pd.DataFrame) -> pd.Index:
    """Row names from the columns that identify a row (``ROW_NAME``), or the treatment (and
    dose) for a consensus table; unique, or a ValueError naming a repeated one."""
    parts = [c for c in ROW_NAME if c in obs] or [c for c in (TREATMENT, DOSE) if c in obs]
    if not parts:
        return pd.Index([str(i) for i in range(len(obs))], dtype=object)
    names = obs[parts].astype(str).agg("_".join, axis=1)
    repeated = names[names.duplicated()]
    if len(repeated):
        raise ValueError(f"rows named {repeated.iloc[0]!r} more than once (by {parts})")
    return pd.Index(names.tolist(), dtype=object)


def feature_annotation(features: list[str], channels: list[str] | None = None) -> pd.DataFrame:
    """``var``: per CellProfiler feature its compartment, module and channel(s) (the names in
    ``channels`` found among its name's parts); empty strings for other features."""
    rows = []
    for name in features:
        compartment, module, *rest = name.split("_") + ["", ""]
        if compartment not in COMPARTMENTS:
            rows.append(("", "", ""))
            continue
        found = [part for part in rest if channels and part in channels]
        rows.append((compartment, module, ",".join(found)))
    return pd.DataFrame(
        rows,
        columns=["compartment", "module", "channel"],
        index=pd.Index(features, dtype=object),
        dtype=object,  # anndata writes object strings, not pandas' string arrays
    )


def uns_record(value):
    """A provenance record as HDF5 can hold it: mappings keyed by file paths (``/`` is HDF5's
    separator) become ``{"paths": [...], "values": [...]}``, None becomes the text "null"."""
    if isinstance(value, dict):
        if any("/" in str(key) for key in value):
            return {
                "paths": list(map(str, value)),
                "values": [uns_record(v) for v in value.values()],
            }
        return {str(key): uns_record(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [uns_record(v) for v in value]
    return "null" if value is None else value


def principal_components(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Up to ``PCA_COMPONENTS`` PCs (scores, variance ratios); None when X has NaN or too few
    rows for a PCA to mean anything."""
    if len(values) < 3 or not np.isfinite(values).all():
        return None
    return pca(values.astype(np.float64), min(PCA_COMPONENTS, *values.shape))


def to_anndata(
    table: pd.DataFrame,
    provenance: dict | None = None,
    features=None,
    corrections: dict[str, pd.DataFrame] | None = None,
    channels: list[str] | None = None,
):
    """AnnData of a profiles table (wells, cells or treatments): ``features`` (default: every
    feature column) become X, the ``Metadata_`` columns obs; ``corrections`` (name -> the same
    rows corrected) become ``obsm["X_{name}"]``."""
    import anndata

    every_feature = set(feature_columns(table.columns))
    if features is None:
        features = [c for c in table.columns if c in every_feature]
    features = list(features)
    obs = table[[c for c in table.columns if c not in every_feature]].reset_index(drop=True)
    for column in obs:
        if not pd.api.types.is_numeric_dtype(obs[column]):
            obs[column] = pd.Categorical(obs[column].astype(object))
    obs.index = obs_names(obs)
    values = table[features].to_numpy(np.float32)
    adata = anndata.AnnData(X=values, obs=obs, var=feature_annotation(features, channels))
    components = principal_components(values)
    if components is not None:
        adata.obsm["X_pca"] = components[0].astype(np.float32)
        adata.uns["pca"] = {"variance_ratio": components[1]}
    for name, corrected in (corrections or {}).items():
        rows = pd.Series(range(len(corrected)), index=obs_names(corrected))
        aligned = corrected.iloc[rows.loc[adata.obs_names].to_numpy()]
        adata.obsm[f"X_{name}"] = aligned[feature_columns(aligned.columns)].to_numpy(np.float32)
    if provenance is not None:
        adata.uns[KEY] = uns_record(provenance)
    return adata


def write_h5ad(table: pd.DataFrame, path: str | os.PathLike, provenance=None, **options):
    """``table`` as an .h5ad file (see to_anndata for ``options``), written atomically."""
    adata = to_anndata(table, provenance, **options)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
