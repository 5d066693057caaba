"""RxRx1's metadata (metadata.csv, or Kaggle's train.csv + train_controls.csv) converted to a plate
sheet and platemaps the workflow's start-up accepts; bad metadata is one line naming
file and row."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from debatch.ingest.manifest import read_platemap
from debatch.ingest.rxrx1 import RxRx1Error, convert, main
from debatch.ingest.sheets import read_sheet
from debatch.pipeline.plates import load_plates
from debatch.settings import PLATE_SHEET_COLUMNS

from conftest import REPO

# well -> (well_type, sirna, sirna_id): RxRx1's negative control is EMPTY (sirna_id 1138)
WELLS = {
    "B02": ("negative_control", "EMPTY", "1138"),
    "B03": ("positive_control", "s501357", "1108"),
    "B04": ("treatment", "s21721", "0"),
    "C02": ("treatment", "s2079", "1"),
}
PLATES = {"HEPG2-01": ["1", "2"], "U2OS-01": ["1"]}
DATASET = {"HEPG2-01": "train", "U2OS-01": "test"}


def metadata(sites=(1, 2)) -> pd.DataFrame:
    """RxRx1's metadata.csv: one row per site, with a WILDS-style split column per well."""
    rows = []
    for experiment, plates in PLATES.items():
        for plate in plates:
            for well, (well_type, sirna, sirna_id) in WELLS.items():
                for site in sites:
                    well_id = f"{experiment}_{plate}_{well}"
                    rows.append(
                        {
                            "site_id": f"{well_id}_{site}",
                            "well_id": well_id,
                            "cell_type": experiment.split("-")[0],
                            "dataset": DATASET[experiment],
                            "experiment": experiment,
                            "plate": plate,
                            "well": well,
                            "site": str(site),
                            "well_type": well_type,
                            "sirna": sirna,
                            "sirna_id": sirna_id,
                            "split": "ood_test" if experiment == "U2OS-01" else "train",
                        }
                    )
    return pd.DataFrame(rows)


def write(table: pd.DataFrame, path) -> str:
    table.to_csv(path, index=False)
    return str(path)


def test_metadata_becomes_one_platemap_per_plate(tmp_path):
    sheet = convert([write(metadata(), tmp_path / "metadata.csv")], "/rx/images", tmp_path / "out")
    assert read_sheet(tmp_path / "out" / "plates.tsv").equals(sheet)
    assert list(sheet.columns) == [*PLATE_SHEET_COLUMNS, "split"]
    assert sheet["plate"].tolist() == ["HEPG2-01_1", "HEPG2-01_2", "U2OS-01_1"]
    assert sheet["batch"].tolist() == ["HEPG2-01", "HEPG2-01", "U2OS-01"]
    assert sheet["images"].tolist()[1:] == [
        "/rx/images/train/HEPG2-01/Plate2",
        "/rx/images/test/U2OS-01/Plate1",
    ]
    assert sheet["split"].tolist() == ["train", "train", "test"]  # RxRx1-WILDS' split
    assert set(sheet["pattern"]) == {"rxrx1"}
    platemap = read_platemap(sheet["platemap"].iloc[2])
    assert list(platemap.columns) == [
        "well",
        "treatment",
        "role",
        "cell_type",
        "dataset",
        "sirna_id",
        "split",
    ]
    assert platemap.set_index("well")["role"].to_dict() == {
        "B02": "negcon",
        "B03": "poscon",
        "B04": "treatment",
        "C02": "treatment",
    }
    assert platemap["treatment"].tolist() == ["EMPTY", "s501357", "s21721", "s2079"]
    assert set(platemap["cell_type"]) == {"U2OS"} and set(platemap["split"]) == {"ood_test"}


def test_other_validation_experiments_are_named_on_the_command_line(tmp_path):
    """--validation: a screen of other experiments (the synthetic RxRx1, a subset) names its
    own validation set, from any dataset; an experiment not in the metadata is refused."""
    path = write(metadata(), tmp_path / "m.csv")
    main([str(path), "/rx", str(tmp_path / "out"), "--validation", "HEPG2-01"])
    sheet = read_sheet(tmp_path / "out" / "plates.tsv")
    assert sheet["split"].tolist() == ["val", "val", "test"]
    with pytest.raises(RxRx1Error, match=r"--validation: experiments \['RPE-09'\] are not"):
        convert([path], "/rx", tmp_path / "x", ("RPE-09",))


def test_wilds_validation_experiments_are_val_and_other_datasets_get_no_split(tmp_path):
    """U2OS-04, a test experiment in RxRx1's metadata, is one of RxRx1-WILDS' four validation
    experiments; a dataset WILDS does not name leaves the split column out."""
    table = metadata().replace({"U2OS-01": "U2OS-04"})
    sheet = convert([write(table, tmp_path / "m.csv")], "/rx", tmp_path / "out")
    assert sheet["split"].tolist() == ["train", "train", "val"]
    other = convert([write(table.replace({"test": "extra"}), tmp_path / "x.csv")], "/rx", tmp_path)
    assert list(other.columns) == list(PLATE_SHEET_COLUMNS)


def test_the_cell_type_can_be_the_batch_and_then_there_is_no_split(tmp_path):
    """--batch cell_type: a whole cell type is one batch (held out, or mixed, as a unit); the
    WILDS split holds out experiments, so that sheet has none, and naming its validation
    experiments is refused."""
    path = write(metadata(), tmp_path / "m.csv")
    main([path, "/rx", str(tmp_path / "out"), "--batch", "cell_type"])
    sheet = read_sheet(tmp_path / "out" / "plates.tsv")
    assert sheet["batch"].tolist() == ["HEPG2", "HEPG2", "U2OS"]
    assert list(sheet.columns) == list(PLATE_SHEET_COLUMNS)
    assert set(read_platemap(sheet["platemap"].iloc[0])["cell_type"]) == {"HEPG2"}
    with pytest.raises(RxRx1Error, match="--batch cell_type the sheet gets no split column"):
        convert([path], "/rx", tmp_path / "x", ("HEPG2-01",), batch="cell_type")
    with pytest.raises(RxRx1Error, match=r"--batch plate: one of \['experiment', 'cell_type'\]"):
        convert([path], "/rx", tmp_path / "x", batch="plate")
    mixed = metadata()
    mixed.loc[(mixed["experiment"] == "U2OS-01") & (mixed["well"] == "C02"), "cell_type"] = "RPE"
    with pytest.raises(RxRx1Error, match=r"plate U2OS-01_1 holds cell_types \['RPE', 'U2OS'\]"):
        convert([write(mixed, tmp_path / "mixed.csv")], "/rx", tmp_path / "x", batch="cell_type")


def test_the_workflows_start_up_accepts_the_converted_sheet(tmp_path):
    sheet = convert([write(metadata(), tmp_path / "m.csv")], tmp_path / "images", tmp_path / "out")
    for folder in sheet["images"]:
        (tmp_path / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / folder / "B02_s1_w1.png")
    config = {"demo": {"enabled": False, "root": "resources/demo"}, "patterns": {}}
    loaded = load_plates(str(tmp_path / "out" / "plates.tsv"), config, lambda sheet: None)
    assert loaded.index.tolist() == sheet["plate"].tolist()


def kaggle(tmp_path) -> list[str]:
    """Kaggle's layout of the same wells: train.csv (treatments, no well_type, no site) and
    train_controls.csv (controls, with well_type)."""
    wells = metadata(sites=(1,)).drop(columns=["site_id", "well_id", "site", "cell_type"])
    wells = wells.drop(columns=["dataset", "sirna_id", "split"])
    wells.insert(0, "id_code", wells["experiment"] + "_" + wells["plate"] + "_" + wells["well"])
    treated = wells["well_type"] == "treatment"
    return [
        write(wells[treated].drop(columns="well_type"), tmp_path / "train.csv"),
        write(wells[~treated], tmp_path / "train_controls.csv"),
    ]


def test_kaggle_tables_are_completed_as_rxrx1_utils_does(tmp_path):
    sheet = convert(kaggle(tmp_path), "images", tmp_path / "out")
    assert sheet["images"].iloc[2] == "images/train/U2OS-01/Plate1"  # the dataset: the file's
    platemap = read_platemap(sheet["platemap"].iloc[2])
    assert list(platemap.columns) == ["well", "treatment", "role", "cell_type", "dataset"]
    assert platemap["role"].tolist() == ["negcon", "poscon", "treatment", "treatment"]
    assert set(platemap["cell_type"]) == {"U2OS"} and set(platemap["dataset"]) == {"train"}


def converting(tmp_path, table: pd.DataFrame, name="metadata.csv"):
    return convert([write(table, tmp_path / name)], "images", tmp_path / "out")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(columns="well_type"), r"metadata.csv lacks column\(s\) \['well_type'\]"),
        (
            lambda t: pd.concat([t, t.iloc[[5]]]),
            r"metadata.csv data row 25: experiment HEPG2-01 plate 1 well B04 site 2 is listed "
            r"again \(.*metadata.csv data row 6\)",
        ),
        (
            lambda t: t.assign(sirna=np.where(t.index == 7, "s99", t["sirna"])),
            r"metadata.csv data row 8: sirna 's99' but .*metadata.csv data row 7 has 's2079' for "
            r"the same well \(experiment HEPG2-01 plate 1 well C02\)$",
        ),
        (
            lambda t: t.assign(well_type=t["well_type"].replace("negative_control", "empty")),
            r"metadata.csv data row 1: well_type 'empty'; RxRx1's: \['negative_control'",
        ),
        (
            lambda t: t.assign(sirna=np.where(t.index == 4, "", t["sirna"])),
            r"metadata.csv data row 5: no sirna \(the treatment of well B04\)",
        ),
        (
            lambda t: t.assign(well=np.where(t.index == 2, "B2x", t["well"])),
            r"metadata.csv data row 3: .*B2x",
        ),
        (
            lambda t: t[~((t["plate"] == "2") & (t["well"] == "B02"))],
            r"metadata.csv data row 9: plate HEPG2-01_2 has no negative_control well",
        ),
    ],
)
def test_bad_metadata_is_one_line_naming_file_and_row(tmp_path, change, message):
    with pytest.raises(RxRx1Error, match=message) as error:
        converting(tmp_path, change(metadata()).reset_index(drop=True))
    assert "\n" not in str(error.value)


def test_kaggle_test_csv_without_labels_says_what_to_use(tmp_path):
    table = metadata(sites=(1,))[["experiment", "plate", "well"]]
    with pytest.raises(RxRx1Error, match=r"test.csv lacks column\(s\) \['sirna'\].*metadata.csv"):
        converting(tmp_path, table, "test.csv")


def test_a_well_in_two_kaggle_tables_is_named(tmp_path):
    train, controls = kaggle(tmp_path)
    with pytest.raises(RxRx1Error, match=r"train.csv data row 1: .*well B04 is listed again"):
        convert([controls, train, train], "images", tmp_path / "out")


def test_the_command_ends_bad_input_with_one_line(tmp_path):
    bad = write(metadata().drop(columns="sirna"), tmp_path / "metadata.csv")
    command = [sys.executable, "-m", "debatch.ingest.rxrx1", bad, "images", str(tmp_path / "o")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "debatch error: " in result.stderr and "lacks column(s) ['sirna']" in result.stderr
    good = write(metadata(), tmp_path / "metadata.csv")
    command[3] = good
    subprocess.run(command, check=True, capture_output=True, cwd=REPO)
    assert (tmp_path / "o" / "platemaps" / "U2OS-01_1.tsv").exists()
