"""The plate sheet at start-up: read and checked, each plate the demo does not generate
checked on disk (folder, CSV manifest, platemap), treatments and image sources compared across
plates."""

from __future__ import annotations

import os

import pandas as pd

from debatch import settings
from debatch.ingest.manifest import ManifestError, image_source, read_platemap
from debatch.ingest.sheets import check_distinct, name_clashes, read_sheet
from debatch.pipeline.checks import ConfigError


def demo_plate_paths(root: str, plate: str) -> dict:
    """Paths the demo rule writes for a plate under ``root`` (the plate sheet must use exactly
    these)."""
    return {
        "images": f"{root}/{plate}/images",
        "platemap": f"{root}/{plate}/platemap.tsv",
        "truth": f"{root}/{plate}/truth",
    }


def _read_plate_sheet(path: str, check_schema) -> pd.DataFrame:
    """The plate sheet (debatch.ingest.sheets: names as written, stray spaces stripped), its
    columns and plate and batch names checked; ``check_schema(sheet)`` holds it against
    plates.schema.yaml (raising ConfigError)."""
    if not os.path.exists(path):
        raise ConfigError(f"plate sheet not found: {path} (key 'plates')")
    try:
        sheet = read_sheet(path)
        for column in settings.PLATE_SHEET_GROUPS:
            if column in sheet:
                check_distinct(sheet[column], f"plate sheet {path} column {column}")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    allowed = list(settings.PLATE_SHEET_COLUMNS)
    unknown = sorted(set(sheet.columns) - set(allowed) - set(settings.PLATE_SHEET_OPTIONAL))
    missing = sorted(set(allowed) - set(sheet.columns))
    if unknown or missing:
        raise ConfigError(
            f"plate sheet {path}: unknown column(s) {unknown}, missing column(s) {missing}; "
            f"columns must be {allowed} (optional: {list(settings.PLATE_SHEET_OPTIONAL)})"
        )
    _check_split_values(sheet, path)
    check_schema(sheet)
    duplicated = sorted(sheet.loc[sheet["plate"].duplicated(), "plate"].unique())
    if duplicated:
        raise ConfigError(f"plate sheet {path} lists plate(s) {duplicated} more than once")
    for column in ("images", "platemap"):
        sheet[column] = sheet[column].map(os.path.normpath)
    return sheet


def _check_split_values(sheet: pd.DataFrame, path: str) -> None:
    """The optional `split` column holds train, val or test on every row."""
    if "split" not in sheet:
        return
    bad = sheet[~sheet["split"].isin(settings.SPLITS)]
    if len(bad):
        row = bad.iloc[0]
        raise ConfigError(
            f"plate sheet {path}: plate {row['plate']} has split {row['split']!r}; the split "
            f"column holds {list(settings.SPLITS)}"
        )


def sheet_splits(train: dict, sheet: pd.DataFrame, path: str) -> dict:
    """``train`` with holdout_batches and validation_batches from the plate sheet's `split`
    column when train.splits is `sheet` (test plates' batches held out, val plates' batches
    validate); as given otherwise. A batch whose plates disagree, a missing column or lists
    given as well are ConfigErrors."""
    if train.get("splits", "config") != "sheet":
        return train
    given = [key for key in ("holdout_batches", "validation_batches") if train.get(key)]
    if given:
        raise ConfigError(
            f"train.splits is sheet: the plate sheet's split column names the batches, so "
            f"train.{given[0]} must be [], not {train[given[0]]}"
        )
    if "split" not in sheet:
        raise ConfigError(
            f"train.splits is sheet but the plate sheet {path} has no split column "
            f"(train | val | test per plate)"
        )
    splits = sheet.groupby("batch", sort=True)["split"].unique()
    for batch, values in splits.items():
        if len(values) > 1:
            raise ConfigError(
                f"plate sheet {path}: batch {batch} has plates of splits {sorted(values)}; a "
                "batch is in one split"
            )
    of = {batch: values[0] for batch, values in splits.items()}
    return {
        **train,
        "holdout_batches": sorted(b for b, split in of.items() if split == "test"),
        "validation_batches": sorted(b for b, split in of.items() if split == "val"),
    }


def _check_real_plate(row, platemaps: dict) -> None:
    """A plate the demo does not generate: its folder, CSV manifest and platemap exist and parse.
    read_platemap checks what platemap.schema.yaml says, column-wise: a row-by-row schema check
    cost 50 ms per platemap, most of a 2,000-plate dry run. Each platemap file is read once
    (``platemaps``: path -> its treatments)."""
    if not os.path.isdir(row.images):
        raise ConfigError(f"plate {row.plate}: image folder not found: {row.images}")
    if row.pattern.endswith(".csv") and not os.path.exists(row.pattern):
        raise ConfigError(f"plate {row.plate}: CSV manifest not found: {row.pattern}")
    if row.platemap in platemaps:
        return
    try:
        platemaps[row.platemap] = set(read_platemap(row.platemap)["treatment"])
    except ManifestError as error:
        raise ConfigError(f"plate {row.plate}: {error}") from None


def _check_treatments_across(platemaps: dict) -> None:
    """A treatment spelt two ways in two platemaps (DMSO, dmso) would be two treatments."""
    clashes = name_clashes(set().union(*platemaps.values()))
    if clashes:
        where = [
            f"{name!r} ({next(p for p, names in platemaps.items() if name in names)})"
            for name in clashes[0]
        ]
        raise ConfigError(
            f"treatments {' / '.join(where)} differ only by case or whitespace; write each one way"
        )


def _check_image_sources(sheet: pd.DataFrame, patterns: dict | None) -> None:
    """Two plates reading one set of images (one folder, links to one plate's files, or CSV
    manifests listing one file first) would be analysed as two plates, the copy counted in
    another batch's every metric."""
    seen = {}
    for row in sheet[~sheet["is_demo"]].itertuples():
        try:
            source = image_source(row.images, row.pattern, patterns)
        except ValueError as error:
            raise ConfigError(f"plate {row.plate}: CSV manifest {error}") from None
        if source in seen:
            where = (
                f"their CSV manifests both list {source[0]} first, after symlinks"
                if source[1] == "csv"
                else f"{source[0]} after symlinks, pattern {source[1]}"
            )
            raise ConfigError(
                f"plates {seen[source]} and {row.plate} read the same images ({where}); give "
                "each plate its own images"
            )
        seen[source] = row.plate


def load_plates(path: str, config: dict, check_schema) -> pd.DataFrame:
    """The checked plate sheet indexed by plate, with ``is_demo``: whether the demo (when
    enabled) generates the plate, which it does for plates at its paths under demo.root."""
    sheet = _read_plate_sheet(path, check_schema)
    root = os.path.normpath(config["demo"]["root"])
    sheet["is_demo"] = [
        config["demo"]["enabled"]
        and row.images == demo_plate_paths(root, row.plate)["images"]
        and row.platemap == demo_plate_paths(root, row.plate)["platemap"]
        for row in sheet.itertuples()
    ]
    platemaps = {}
    for row in sheet[~sheet["is_demo"]].itertuples():
        _check_real_plate(row, platemaps)
    _check_treatments_across(platemaps)
    _check_image_sources(sheet, config.get("patterns"))
    return sheet.set_index("plate", drop=False)
