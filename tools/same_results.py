"""Are two results folders the same results? For checking that a change of code that should
not change behaviour did not (the demo run before and after, same machine, same threads).

    python tools/same_results.py BEFORE AFTER

Compares every file the two folders hold by what it means, not its bytes where a file records
how or when it was made: Parquet tables equal with the schema metadata (provenance) and the
columns' nullability left out, .npy/.npz arrays byte-equal, .pt files' tensors torch.equal (and
model.pt's other values equal), .h5ad data equal without uns["debatch"], JSON and TSV equal
(training logs without their timings), TIFF pixels equal. Logs, benchmarks, PNG and HTML are
skipped (timings and renderings). Prints each difference; exits 1 when there is one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SKIPPED_FOLDERS = {"logs", "benchmarks", ".snakemake"}
SKIPPED_SUFFIXES = {".png", ".html", ".log"}
TIMINGS = ["crops_per_s", "seconds"]  # training_log.tsv columns that measure the machine


def _comparable(table: pa.Table) -> pa.Table:
    """``table`` without schema metadata, every column nullable and a float column's NaN a
    null: a file written before core.io wrote NaN as a value (and float columns required)
    holds the same values as nulls, and Arrow's ``equals`` never finds NaN equal to NaN."""
    columns = [
        pc.if_else(pc.is_nan(column), None, column) if pa.types.is_floating(column.type) else column
        for column in table.columns
    ]
    schema = pa.schema([field.with_nullable(True) for field in table.schema])
    return pa.Table.from_arrays(columns, schema=schema)


def same_parquet(a: Path, b: Path) -> bool:
    left, right = (_comparable(pq.read_table(p)) for p in (a, b))
    return left.equals(right)


def same_arrays(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_npz(a: Path, b: Path) -> bool:
    with np.load(a) as left, np.load(b) as right:
        return set(left) == set(right) and all(same_arrays(left[k], right[k]) for k in left)


def same_tree(a, b, tensors_only: bool) -> bool:
    """Nested dicts / lists of a torch file: tensors torch.equal, other leaves equal (or
    ignored with ``tensors_only``: a checkpoint's history holds timings)."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_tree(a[k], b[k], tensors_only) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_tree(x, y, tensors_only) for x, y in zip(a, b))
    return tensors_only or a == b


def same_torch(a: Path, b: Path) -> bool:
    import torch

    left, right = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
    return same_tree(left, right, tensors_only=a.name != "model.pt")


def same_h5ad(a: Path, b: Path) -> bool:
    import anndata

    left, right = (anndata.read_h5ad(p) for p in (a, b))
    for data in (left, right):
        data.uns.pop("debatch", None)
    return (
        same_arrays(np.asarray(left.X), np.asarray(right.X))
        and left.obs.equals(right.obs)
        and left.var.equals(right.var)
        and json.dumps(left.uns, sort_keys=True, default=str)
        == json.dumps(right.uns, sort_keys=True, default=str)
    )


def same_tsv(a: Path, b: Path) -> bool:
    if a.name != "training_log.tsv":
        return a.read_bytes() == b.read_bytes()
    left, right = (pd.read_csv(p, sep="\t").drop(columns=TIMINGS) for p in (a, b))
    return left.equals(right)


def same_tiff(a: Path, b: Path) -> bool:
    import tifffile

    return same_arrays(tifffile.imread(a), tifffile.imread(b))


COMPARE = {
    ".parquet": same_parquet,
    ".npy": lambda a, b: same_arrays(np.load(a), np.load(b)),
    ".npz": same_npz,
    ".pt": same_torch,
    ".h5ad": same_h5ad,
    ".json": lambda a, b: json.loads(a.read_text()) == json.loads(b.read_text()),
    ".tsv": same_tsv,
    ".tiff": same_tiff,
    ".tif": same_tiff,
}


def compared(root: Path) -> set[Path]:
    """Files of ``root`` that hold results (relative paths)."""
    return {
        path.relative_to(root)
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix not in SKIPPED_SUFFIXES
        and not SKIPPED_FOLDERS & set(path.relative_to(root).parts)
    }


def differences(before: Path, after: Path) -> list[str]:
    ours, theirs = compared(before), compared(after)
    found = [f"only in {before}: {p}" for p in sorted(ours - theirs)]
    found += [f"only in {after}: {p}" for p in sorted(theirs - ours)]
    for path in sorted(ours & theirs):
        same = COMPARE.get(path.suffix, lambda a, b: a.read_bytes() == b.read_bytes())
        if not same(before / path, after / path):
            found.append(f"differs: {path}")
    return found


def main(argv: list[str]) -> int:
    before, after = (Path(arg) for arg in argv)
    found = differences(before, after)
    print("\n".join(found) or f"same results: {len(compared(before))} files compared")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
