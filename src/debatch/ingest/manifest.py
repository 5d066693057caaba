"""Manifest stage: find every image of a plate and tie it to its well's treatment.

Output contract: one row per (well, site) with Metadata_ columns (plate, batch, well, site and
every platemap column) and one ``Path_{channel}`` column per logical channel.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from debatch.core.wells import normalise_well, well_name
from debatch.ingest.sheets import check_distinct, how_read, read_sheet
from debatch.settings import (
    BATCH,
    NEGCON,
    PATH,
    PLATE,
    PLATEMAP_GROUPS,
    PLATEMAP_REQUIRED,
    ROLE,
    ROLES,
    SITE,
    SITE_KEY,
    TREATMENT,
    WELL,
)

log = logging.getLogger(__name__)

# Named filename patterns. Each regex must capture ``site`` and ``channel`` plus either ``well``
# or ``row`` + ``col`` (numbers, 1-based). Users add their own under ``patterns:`` in config.
_BUILTIN_PATTERNS = {
    # Opera/Phenix (Harmony export): r01c01f01p01-ch1sk1fk1fl1.tiff
    "opera_phenix": r"^r(?P<row>\d{2})c(?P<col>\d{2})f(?P<site>\d{2})p\d{2}-ch(?P<channel>\d+)"
    r"sk\d+fk\d+fl\d+\.tiff?$",
    # MetaXpress / ImageXpress: {anything}_{well}_s{site}_w{channel}{anything}.tif
    "metaxpress": r"^.*_(?P<well>[A-Pa-p]\d{1,2})_s(?P<site>\d+)_w(?P<channel>\d)[^_]*\.tiff?$",
    # RxRx1 (Recursion; rxrx1-utils rxrx/io.py): {dataset}/{experiment}/Plate{p}/B02_s1_w1.png, a
    # plate's folder being Plate{p} (debatch.ingest.rxrx1 writes the plate sheet)
    "rxrx1": r"^(?P<well>[A-Pa-p]\d{1,2})_s(?P<site>\d+)_w(?P<channel>\d+)\.png$",
}
# Platemap columns with a fixed Metadata_ name; any other column becomes Metadata_{column}.
_PLATEMAP_RENAME = {"well": WELL, "treatment": TREATMENT, "role": ROLE}
_CSV_MANIFEST_COLUMNS = ("well", "site", "channel", "path")


class ManifestError(ValueError):
    """Input that cannot be turned into a manifest; the message names the file/well."""


def _checked_well(well: str) -> str:
    """'b7', 'B7' and 'B07' all mean well B07; anything else is a ManifestError."""
    try:
        return normalise_well(well)
    except ValueError as error:
        raise ManifestError(str(error)) from None


def read_platemap(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check a platemap (debatch.ingest.sheets: .tsv or .csv, names as written,
    stray spaces stripped); errors name the file and the offending well, column or name. Two
    spellings of one name (DMSO, dmso) are refused in the columns that group wells
    (settings.PLATEMAP_GROUPS) only: other columns, a SMILES say, may differ by case."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"platemap not found: {path}")
    try:
        platemap = read_sheet(path)
        for column in (c for c in PLATEMAP_GROUPS if c in platemap):
            check_distinct(platemap[column], f"platemap {path} column {column}")
    except ManifestError:
        raise
    except ValueError as error:
        raise ManifestError(str(error)) from None
    missing = [c for c in PLATEMAP_REQUIRED if c not in platemap.columns]
    if missing:
        raise ManifestError(
            f"platemap {path} lacks column(s) {missing}; needs {list(PLATEMAP_REQUIRED)} "
            f"(read {how_read(path)}: found {list(platemap.columns)})"
        )
    try:
        platemap["well"] = platemap["well"].map(_checked_well)
    except ManifestError as exc:
        raise ManifestError(f"platemap {path}: {exc}") from None
    duplicated = platemap["well"][platemap["well"].duplicated()].unique()
    if len(duplicated):
        raise ManifestError(f"platemap {path} lists well(s) {list(duplicated)} more than once")
    bad_roles = sorted(set(platemap["role"]) - set(ROLES))
    if bad_roles:
        raise ManifestError(f"platemap {path} has role(s) {bad_roles}; allowed: {list(ROLES)}")
    empty = platemap.loc[platemap["treatment"].str.strip() == "", "well"].tolist()
    if empty:
        raise ManifestError(f"platemap {path} has no treatment for well(s) {empty}")
    if not (platemap["role"] == NEGCON).any():
        raise ManifestError(
            f"platemap {path} has no negcon well; per-plate normalisation needs one"
        )
    return platemap


def platemap_metadata(platemap: pd.DataFrame) -> pd.DataFrame:
    """A platemap's columns as the wells' metadata columns (well, treatment, role, and any
    other column as ``Metadata_{column}``): every source's cells get the same names."""
    return platemap.rename(
        columns={c: _PLATEMAP_RENAME.get(c, f"Metadata_{c}") for c in platemap.columns}
    )


def image_source(
    images: str | os.PathLike, pattern: str, patterns: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Where a plate's images really are, after symlinks, so that two plates reading one set
    of files are caught before either is analysed: (the real folder of its first file that
    matches the pattern, the pattern) (a folder of links to another plate's files is that
    plate's folder), or for a CSV manifest (the real path of the first file it lists, "csv"):
    its relative paths are relative to the plate's ``images`` folder, so one template manifest
    may serve many plates, and two manifests may list one plate's files. Reads one folder
    entry or a few (a manifest's first rows), never the whole folder."""
    if pattern.endswith(".csv"):
        listed = read_sheet(pattern, rows=8).get("path", pd.Series(dtype=str))
        first = next((path for path in listed if path), None)
        if first is None:  # no file listed (the manifest job says what is wrong)
            return os.path.realpath(pattern), "csv"
        return os.path.realpath(_listed(first, Path(images))), "csv"
    regex = re.compile({**_BUILTIN_PATTERNS, **(patterns or {})}.get(pattern, "(?!)"))
    with os.scandir(images) as entries:
        for entry in entries:
            if regex.match(entry.name) and entry.is_file():
                return os.path.dirname(os.path.realpath(entry.path)), pattern
    return os.path.realpath(images), pattern


def _scan_folder(images: Path, regex: str) -> tuple[pd.DataFrame, int]:
    compiled = re.compile(regex)
    groups = set(compiled.groupindex)
    if not ({"site", "channel"} <= groups and ("well" in groups or {"row", "col"} <= groups)):
        raise ManifestError(
            f"pattern {regex!r} must capture site, channel and well (or row and col)"
        )
    records, unmatched = [], 0
    for entry in sorted(os.scandir(images), key=lambda e: e.name):
        if not entry.is_file():
            continue
        match = compiled.match(entry.name)
        if not match:
            unmatched += 1
            continue
        fields = match.groupdict()
        well = (
            _checked_well(fields["well"])
            if fields.get("well")
            else well_name(int(fields["row"]) - 1, int(fields["col"]) - 1)
        )
        records.append(
            {
                "well": well,
                "site": int(fields["site"]),
                "channel": fields["channel"],
                "path": entry.path,
            }
        )
    return pd.DataFrame(records, columns=list(_CSV_MANIFEST_COLUMNS)), unmatched


def _read_csv_manifest(csv_path: Path, images: Path) -> pd.DataFrame:
    table = read_sheet(csv_path)
    missing = [c for c in _CSV_MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(f"CSV manifest {csv_path} lacks column(s) {missing}")
    table = table[list(_CSV_MANIFEST_COLUMNS)].copy()
    table["well"] = table["well"].map(_checked_well)
    table["site"] = table["site"].astype(int)
    table["path"] = [_listed(p, images) for p in table["path"]]
    return table


def _listed(path: str, images: Path) -> str:
    """A CSV manifest's path of a file: absolute, or relative to the plate's image folder."""
    return path if os.path.isabs(path) else str(images / path)


def find_images(
    images: str | os.PathLike, pattern: str, patterns: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, int]:
    """Long table (well, site, channel, path) of a plate's images, plus the count of ignored files.

    ``pattern`` is a name in _BUILTIN_PATTERNS / ``patterns`` or a path to a CSV manifest.
    """
    images = Path(images)
    if not images.is_dir():
        raise ManifestError(f"image folder not found: {images}")
    known = {**_BUILTIN_PATTERNS, **(patterns or {})}
    if pattern in known:
        return _scan_folder(images, known[pattern])
    if pattern.endswith(".csv"):
        if not Path(pattern).exists():
            raise ManifestError(f"CSV manifest not found: {pattern}")
        return _read_csv_manifest(Path(pattern), images), 0
    raise ManifestError(
        f"unknown pattern {pattern!r}: use one of {sorted(known)} or a .csv manifest"
    )


def _name_channels(found: pd.DataFrame, plate: str, channels: Mapping[str, str]) -> pd.DataFrame:
    """Raw channel ids (or logical names) -> logical names; other channels' files are ignored."""
    raw_to_name = {str(raw): name for name, raw in channels.items()}
    raw_to_name.update({name: name for name in channels})
    found = found.assign(channel=found["channel"].map(raw_to_name))
    n_other = int(found["channel"].isna().sum())
    if n_other:
        log.info(
            "plate %s: %d image(s) of channels not in the channel map were ignored", plate, n_other
        )
    return found.dropna(subset=["channel"])


def _one_path_per_channel(
    found: pd.DataFrame, plate: str, images, channels: Mapping[str, str]
) -> pd.DataFrame:
    """Wide table (well, site, one column per channel) with every file present; errors name
    the plate, well, site and channel."""
    duplicated = found[found.duplicated(["well", "site", "channel"])]
    if len(duplicated):
        first = duplicated.iloc[0]
        raise ManifestError(
            f"plate {plate}: well {first.well} site {first.site} channel "
            f"{first.channel} matches more than one file in {images}"
        )
    wide = found.pivot(index=["well", "site"], columns="channel", values="path")
    for name in channels:
        if name not in wide.columns:
            raise ManifestError(
                f"plate {plate}: no images of channel {name} (raw id {channels[name]}) in {images}"
            )
    incomplete = wide[wide[list(channels)].isna().any(axis=1)]
    if len(incomplete):
        (well, site), row = next(incomplete.iterrows())
        missing = [c for c in channels if pd.isna(row[c])]
        raise ManifestError(
            f"plate {plate}: well {well} site {site} lacks channel(s) {missing} in {images}"
        )
    wide = wide[list(channels)].reset_index()
    for name in channels:
        for path in wide[name]:
            if not os.path.exists(path):
                raise ManifestError(f"plate {plate}: image file missing: {path}")
    return wide


def _match_platemap(wide: pd.DataFrame, plate: str, images, platemap: pd.DataFrame) -> pd.DataFrame:
    """Sites of platemap wells only (others dropped and logged); a platemap well without any
    image is an error."""
    platemap_wells = set(platemap["well"])
    unmapped = sorted(set(wide["well"]) - platemap_wells)
    if unmapped:
        log.warning(
            "plate %s: %d well(s) with images are not in the platemap and were dropped: %s",
            plate,
            len(unmapped),
            unmapped,
        )
        wide = wide[wide["well"].isin(platemap_wells)]
    no_images = sorted(platemap_wells - set(wide["well"]))
    if no_images:
        raise ManifestError(
            f"plate {plate}: platemap well(s) {no_images} have no images in {images}"
        )
    return wide


def build_manifest(
    plate: str,
    batch: str,
    images: str | os.PathLike,
    pattern: str,
    platemap: pd.DataFrame,
    channels: Mapping[str, str],
    patterns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per (well, site) with Path_{channel} columns and the well's platemap metadata.

    ``channels`` maps logical name -> raw channel id (e.g. {"DNA": "1"}); a CSV manifest may use
    either. Images of wells absent from the platemap are dropped and counted in the log; a platemap
    well without images, a missing channel or a missing file is an error.
    """
    found, unmatched = find_images(images, pattern, patterns)
    if unmatched:
        log.info(
            "plate %s: %d file(s) in %s do not match pattern %s and were ignored",
            plate,
            unmatched,
            images,
            pattern,
        )
    found = _name_channels(found, plate, channels)
    wide = _one_path_per_channel(found, plate, images, channels)
    wide = _match_platemap(wide, plate, images, platemap)
    metadata = platemap_metadata(platemap)
    manifest = wide.rename(
        columns={"well": WELL, "site": SITE, **{name: f"{PATH}{name}" for name in channels}}
    )
    manifest = manifest.merge(metadata, on=WELL, how="left")
    manifest.insert(0, BATCH, batch)
    manifest.insert(0, PLATE, plate)
    path_columns = [f"{PATH}{name}" for name in channels]
    ordered = [c for c in manifest.columns if c not in path_columns] + path_columns
    manifest = manifest[ordered].sort_values(SITE_KEY).reset_index(drop=True)
    log.info(
        "plate %s: %d wells, %d sites, %d channels",
        plate,
        manifest[WELL].nunique(),
        len(manifest),
        len(channels),
    )
    return manifest
