"""RxRx1 (Recursion) metadata -> debatch's plate sheet and one platemap per plate.

    python -m debatch.ingest.rxrx1 metadata.csv IMAGES OUT
    python -m debatch.ingest.rxrx1 train.csv train_controls.csv [test.csv ...] IMAGES OUT

A command, not a rule: the plate sheet is what the workflow builds its jobs from, so it exists
before Snakemake starts (docs/running.md, "RxRx1 and other PNG screens").

Input: RxRx1's ``metadata.csv`` (one row per site: site_id, well_id, cell_type, dataset,
experiment, plate, well, site, well_type, sirna, sirna_id) or Kaggle's per-well tables
(``train.csv`` + ``train_controls.csv``), completed as rxrx1-utils' ``combine_metadata`` does:
the dataset is the file's name, the cell type the experiment's prefix, well_type ``treatment``
where the table has none. Output: ``OUT/plates.tsv`` (plate ``{experiment}_{plate}``, batch =
experiment, images ``IMAGES/{dataset}/{experiment}/Plate{plate}``, pattern ``rxrx1``) and
``OUT/platemaps/{plate}.tsv`` (well; treatment = sirna; role from well_type; the cell type, the
dataset and every other column constant over a well's rows, a WILDS split say, as metadata).
``--batch cell_type`` makes the cell type the batch instead, so a model can hold out a whole
cell type (no split column then: WILDS' split holds out experiments).

The plate sheet's ``split`` column (train | val | test; used with ``train.splits: sheet``) is
RxRx1-WILDS' split of experiments, as wilds/datasets/rxrx1_dataset.py (p-lambda/wilds) makes it
from the metadata's ``dataset`` column: ``train`` plates train, ``test`` plates are the OOD test
and ``val`` plates validate. RxRx1's own metadata has no ``val``: there the four validation
experiments of WILDS, the first test experiment of each cell type (``WILDS_VALIDATION``), are
``val``; ``--validation EXP ...`` names other validation experiments (a screen of other
experiments: the synthetic one of ``make rxrx1-demo``, a subset of RxRx1). WILDS'
in-distribution test, site 2 of the training experiments, is the config's
``train.id_sites: [2]``. Metadata whose datasets are other than train, val and test gets no
split column.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path

import pandas as pd

from debatch.core.logs import setup_logging
from debatch.core.wells import normalise_well
from debatch.ingest.sheets import read_sheet, write_sheet
from debatch.settings import CELL_TYPE, DATASET, METADATA, NEGCON, PLATE_SHEET_COLUMNS, SPLITS

log = logging.getLogger(__name__)

PATTERN = "rxrx1"  # debatch.ingest.manifest's built-in pattern of RxRx1's file names
ROLE_OF = {"negative_control": NEGCON, "positive_control": "poscon", "treatment": "treatment"}
_CELL_TYPE, _DATASET = (name.removeprefix(METADATA) for name in (CELL_TYPE, DATASET))
# what the plate sheet's batch can be (--batch): metadata columns constant over a plate
BATCH_KEYS = ("experiment", _CELL_TYPE)
_WELL_KEY = ["experiment", "plate", "well"]
_SITE_KEY = [*_WELL_KEY, "site"]
_PER_SITE = ("experiment", "plate", "well", "site", "well_type", "sirna", _DATASET, _CELL_TYPE)
_PER_WELL = ("experiment", "plate", "well", "sirna")  # Kaggle's train.csv
# columns that are not platemap metadata: what the sheet and the platemap's well, treatment
# and role say, a site's or well's id, and this module's own (where a row came from, ...)
_NOT_METADATA = (*_SITE_KEY, "site_id", "well_id", "id_code", "well_type", "sirna")
_NOT_METADATA += ("row", "plate_name", "number", "treatment", "role")
# the columns that must agree over a well's rows (other columns that do not are left out)
_WELL_COLUMNS = ("sirna", "well_type", _DATASET, _CELL_TYPE, "sirna_id")
_PLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # workflow/schemas/plates.schema.yaml
# RxRx1-WILDS' validation experiments (WILDS' metadata.csv: dataset `val`), in RxRx1's own
# metadata test experiments: the first test experiment of each cell type. Checked against
# WILDS' split sizes per cell type: val holds one experiment of each, and train's images
# (site 1 of about 1,232 wells per experiment) are 7 HEPG2, 16 HUVEC, 7 RPE and 3 U2OS
# experiments. Assuming WILDS numbered each cell type's experiments in order, as RxRx1 does,
# val's are then the 8th, 17th, 8th and 4th.
WILDS_VALIDATION = ("HEPG2-08", "HUVEC-17", "RPE-08", "U2OS-04")


class RxRx1Error(ValueError):
    """Metadata that cannot be converted; the message names the file and row."""


def read_metadata(path: str | os.PathLike) -> pd.DataFrame:
    """One metadata file's rows (sites, or Kaggle's wells with ``site`` empty) with the
    columns of a per-site table and ``row``, where each came from (file, data row)."""
    path = Path(path)
    if not path.exists():
        raise RxRx1Error(f"RxRx1 metadata not found: {path}")
    table = read_sheet(path)
    required = _PER_SITE if "site" in table else _PER_WELL
    missing = [column for column in required if column not in table]
    if missing:
        hint = "; Kaggle's test.csv has no labels: use RxRx1's metadata.csv" * ("sirna" in missing)
        raise RxRx1Error(
            f"{path} lacks column(s) {missing}: needs {list(required)} "
            f"(found {list(table.columns)}){hint}"
        )
    if required is _PER_WELL:  # as rxrx1-utils' combine_metadata completes them
        completed = {
            "site": "",
            "well_type": "treatment",
            _CELL_TYPE: table["experiment"].str.split("-").str[0],
            _DATASET: path.stem.removesuffix("_controls"),
        }
        table = table.assign(**{c: value for c, value in completed.items() if c not in table})
    return table.assign(row=[f"{path} data row {i + 1}" for i in range(len(table))])


def _checked(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with wells as B02 and a role per row; a bad well name, well_type or an empty
    sirna is an RxRx1Error naming the row."""
    wells, roles = [], []
    for row in rows.itertuples(index=False):
        try:
            wells.append(normalise_well(row.well))
        except ValueError as error:
            raise RxRx1Error(f"{row.row}: {error}") from None
        if row.well_type not in ROLE_OF:
            raise RxRx1Error(f"{row.row}: well_type {row.well_type!r}; RxRx1's: {list(ROLE_OF)}")
        if not row.sirna:
            raise RxRx1Error(f"{row.row}: no sirna (the treatment of well {row.well})")
        if not _PLATE_NAME.fullmatch(f"{row.experiment}_{row.plate}"):
            raise RxRx1Error(
                f"{row.row}: experiment {row.experiment!r} plate {row.plate!r} cannot name a "
                "plate (letters, digits, _ . - only)"
            )
        roles.append(ROLE_OF[row.well_type])
    return rows.assign(well=wells, role=roles)


def _where(row, site: bool = True) -> str:
    """'experiment HEPG2-01 plate 1 well B02 site 1' (no site for a per-well table's row)."""
    where = f"experiment {row['experiment']} plate {row['plate']} well {row['well']}"
    return f"{where} site {row['site']}" if site and row["site"] else where


def _check_unique(rows: pd.DataFrame) -> None:
    """A site (or a well of a per-well table) listed twice is an RxRx1Error naming both rows."""
    again = rows.duplicated(_SITE_KEY)
    if again.any():
        second = rows[again].iloc[0]
        first = rows[(rows[_SITE_KEY] == second[_SITE_KEY]).all(axis=1)].iloc[0]
        raise RxRx1Error(f"{second['row']}: {_where(second)} is listed again ({first['row']})")


def _check_agree(rows: pd.DataFrame, column: str) -> None:
    """The rows of one well that disagree on ``column``: an RxRx1Error naming both rows."""
    varies = rows.groupby(_WELL_KEY, sort=False)[column].transform("nunique") > 1
    if varies.any():
        first = rows[varies].iloc[0]
        same_well = (rows[_WELL_KEY] == first[_WELL_KEY]).all(axis=1)
        other = rows[same_well & (rows[column] != first[column])].iloc[0]
        raise RxRx1Error(
            f"{other['row']}: {column} {other[column]!r} but {first['row']} has "
            f"{first[column]!r} for the same well ({_where(first, site=False)})"
        )


def wells_table(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per well of every file: its plate's name, treatment, role and the columns kept
    as platemap metadata, checked (one-line RxRx1Errors naming file and row)."""
    rows = _checked(pd.concat([read_metadata(path) for path in paths], ignore_index=True))
    _check_unique(rows)
    for column in [c for c in _WELL_COLUMNS if c in rows]:
        _check_agree(rows, column)
    per_site = [c for c in rows if c not in _NOT_METADATA and c not in _WELL_COLUMNS]
    per_site = [c for c in per_site if (rows.groupby(_WELL_KEY)[c].nunique() > 1).any()]
    if per_site:
        log.info("left out column(s) %s: they differ between a well's sites", per_site)
    wells = rows.drop(columns=per_site).drop_duplicates(_WELL_KEY).copy()
    wells.insert(0, "plate_name", wells["experiment"] + "_" + wells["plate"])
    return wells.rename(columns={"sirna": "treatment"})


def _check_plates(wells: pd.DataFrame) -> None:
    """Every plate in one dataset folder and with a negcon well, else an RxRx1Error naming the
    plate's first row."""
    for name, plate in wells.groupby("plate_name", sort=False):
        datasets = sorted(set(plate[_DATASET]))
        if len(datasets) > 1:
            raise RxRx1Error(
                f"{plate['row'].iloc[0]}: plate {name} is in datasets {datasets}; its images are "
                "in one folder IMAGES/{dataset}/{experiment}/Plate{plate}"
            )
        if not (plate["role"] == NEGCON).any():
            raise RxRx1Error(
                f"{plate['row'].iloc[0]}: plate {name} has no negative_control well; "
                "profiles are normalised against them per plate"
            )


def _plate_order(wells: pd.DataFrame) -> pd.DataFrame:
    """Plates by experiment, then plate number (Plate2 before Plate10); wells by position."""
    number = pd.to_numeric(wells["plate"], errors="coerce")
    return wells.assign(number=number).sort_values(["experiment", "number", "plate", "well"])


def wilds_split(
    dataset: str, experiment: str, validation: tuple[str, ...] = WILDS_VALIDATION
) -> str | None:
    """A plate's RxRx1-WILDS split (train | val | test) from its dataset and experiment (module
    docstring): ``validation`` experiments validate whatever their dataset; None for a dataset
    other than train, val and test."""
    if experiment in validation and dataset in SPLITS:
        return "val"
    return dataset if dataset in SPLITS else None


def convert(
    paths: list[str | os.PathLike],
    images: str | os.PathLike,
    out: str | os.PathLike,
    validation: tuple[str, ...] = WILDS_VALIDATION,
    batch: str = "experiment",
) -> pd.DataFrame:
    """Write ``out/plates.tsv`` and ``out/platemaps/{plate}.tsv`` from RxRx1 metadata (module
    docstring; ``validation``: the experiments of the split's val); returns the plate sheet.
    ``batch``: what the sheet's batch is, one of BATCH_KEYS (module docstring). Paths are
    written as given (relative ones are relative to where Snakemake runs)."""
    if batch not in BATCH_KEYS:
        raise RxRx1Error(f"--batch {batch}: one of {list(BATCH_KEYS)}")
    wells = _plate_order(wells_table(paths))
    _check_plates(wells)
    unknown = sorted(set(validation) - set(wells["experiment"]))
    if validation != WILDS_VALIDATION and unknown:
        raise RxRx1Error(f"--validation: experiments {unknown} are not in the metadata")
    mixed = wells.groupby("plate_name", sort=False)[batch].nunique() > 1
    if mixed.any():
        name = mixed.idxmax()
        plate = wells[wells["plate_name"] == name]
        raise RxRx1Error(
            f"{plate['row'].iloc[0]}: plate {name} holds {batch}s "
            f"{sorted(set(plate[batch]))}; --batch {batch} needs one per plate"
        )
    if validation != WILDS_VALIDATION and batch != "experiment":
        raise RxRx1Error(
            f"--validation names experiments of the WILDS split, which holds experiments out; "
            f"with --batch {batch} the sheet gets no split column"
        )
    metadata = [c for c in wells if c not in _NOT_METADATA]
    sheet = []
    for name, plate in wells.groupby("plate_name", sort=False):
        platemap = Path(out) / "platemaps" / f"{name}.tsv"
        write_sheet(plate[["well", "treatment", "role", *metadata]], platemap)
        first = plate.iloc[0]
        folder = Path(images) / first[_DATASET] / first["experiment"] / f"Plate{first['plate']}"
        split = wilds_split(first[_DATASET], first["experiment"], validation)
        sheet.append([name, first[batch], str(folder), PATTERN, str(platemap), split])
    sheet = pd.DataFrame(sheet, columns=[*PLATE_SHEET_COLUMNS, "split"])
    if batch != "experiment":
        log.info("no split column: WILDS' split holds out experiments, the batches are %ss", batch)
        sheet = sheet.drop(columns="split")
    elif sheet["split"].isna().any():
        log.info(
            "no split column: datasets %s are not RxRx1-WILDS' train, val and test",
            sorted(set(wells[_DATASET]) - set(SPLITS)),
        )
        sheet = sheet.drop(columns="split")
    write_sheet(sheet, Path(out) / "plates.tsv")
    log.info(
        "%d plates in %d batches (by %s), %d wells: %s",
        len(sheet),
        sheet["batch"].nunique(),
        batch,
        len(wells),
        Path(out) / "plates.tsv",
    )
    return sheet


def main(argv: list[str] | None = None) -> None:
    """The command line (module docstring); bad input ends it with one line."""
    parser = argparse.ArgumentParser(
        prog="python -m debatch.ingest.rxrx1",
        description="RxRx1 metadata -> debatch plate sheet (OUT/plates.tsv) and platemaps",
    )
    parser.add_argument("metadata", nargs="+", help="metadata.csv, or train.csv train_controls.csv")
    parser.add_argument("images", help="the folder holding {dataset}/{experiment}/Plate{p}/")
    parser.add_argument("out", help="where plates.tsv and platemaps/ are written")
    parser.add_argument(
        "--validation",
        nargs="+",
        default=list(WILDS_VALIDATION),
        metavar="EXPERIMENT",
        help="the experiments of the WILDS split's validation set (default: RxRx1-WILDS' four)",
    )
    parser.add_argument(
        "--batch",
        choices=BATCH_KEYS,
        default="experiment",
        help="the plate sheet's batch: the experiment (default, as RxRx1-WILDS' domains) or the "
        "cell type (to hold out, and measure mixing across, whole cell types)",
    )
    args = parser.parse_args(argv)
    setup_logging(None)
    convert(args.metadata, args.images, args.out, tuple(args.validation), args.batch)


if __name__ == "__main__":
    main()
