"""Hand-written tables (plate sheet, platemaps, CSV manifests): delimiters, BOM, names kept as
written, stray spaces stripped and said once, two spellings of one name refused."""

import logging

import pandas as pd
import pytest

from debatch.ingest.manifest import ManifestError, read_platemap
from debatch.ingest.sheets import check_distinct, read_sheet, write_sheet


def test_the_extension_decides_the_delimiter_and_a_bom_is_ignored(tmp_path):
    (tmp_path / "a.csv").write_text("\ufeffwell,treatment\nA01,DMSO\n", encoding="utf-8")
    (tmp_path / "a.tsv").write_text("well\ttreatment\nA01\tDMSO\n")
    (tmp_path / "a.txt").write_text("well\ttreatment\nA01\tDMSO\n")
    for name in ("a.csv", "a.tsv", "a.txt"):
        assert read_sheet(tmp_path / name).to_dict("records") == [
            {"well": "A01", "treatment": "DMSO"}
        ]


def test_other_names_are_sniffed_and_the_delimiter_said(tmp_path, caplog):
    (tmp_path / "map.platemap").write_text("well;treatment\nA01;DMSO\nA02;cpd1\n")
    with caplog.at_level(logging.INFO):
        assert list(read_sheet(tmp_path / "map.platemap").columns) == ["well", "treatment"]
    assert "read as semicolon-separated (sniffed" in caplog.text


def test_names_stay_as_written(tmp_path):
    """pandas would read 001 as 1, 1e5 as 100000.0, NA and None as missing."""
    (tmp_path / "a.tsv").write_text("name\n001\n2021_05_03\n1e5\nNA\nNone\n\n1.0\n")
    assert read_sheet(tmp_path / "a.tsv")["name"].tolist() == [
        "001",
        "2021_05_03",
        "1e5",
        "NA",
        "None",
        "1.0",
    ]


@pytest.mark.parametrize("name", ["sheet.tsv", "sheet.csv"])
def test_a_written_sheet_reads_back_cell_for_cell(tmp_path, name):
    table = pd.DataFrame({"plate": ["001", "HEPG2-01_1"], "note": ["NA", 'a, "b"\tc']})
    write_sheet(table, tmp_path / "out" / name)
    assert read_sheet(tmp_path / "out" / name).equals(table)


def test_surrounding_whitespace_is_stripped_and_said_once_per_file(tmp_path, caplog):
    path = tmp_path / "plates.tsv"
    path.write_text("plate\tbatch \nP1\tb1 \nP2\t b1\nP3\tb1\n")
    with caplog.at_level(logging.WARNING):
        table = read_sheet(path)
    assert table.to_dict("list") == {"plate": ["P1", "P2", "P3"], "batch": ["b1"] * 3}
    (record,) = caplog.records
    assert record.getMessage() == (
        f"{path}: surrounding whitespace stripped from 2 cell(s) and 1 header(s), e.g. batch 'b1 '"
    )


def test_names_differing_only_by_case_or_whitespace_are_refused():
    check_distinct(["DMSO", "DMSO", "cpd1"], "here")
    for names in (["DMSO", "dmso"], ["cpd 1", "cpd  1"], ["Cpd 1", "cpd\t1"]):
        with pytest.raises(ValueError, match="^here: .* differ only by case or whitespace"):
            check_distinct(names, "here")


def test_a_platemap_of_the_wrong_delimiter_says_how_it_was_read(tmp_path):
    """A comma-separated file named .tsv: the message shows the one column found."""
    path = tmp_path / "map.tsv"
    path.write_text("well,treatment,role\nA01,DMSO,negcon\n")
    with pytest.raises(ManifestError, match=r"read tab-separated \(\.tsv\): found \['well,treat"):
        read_platemap(path)
    (tmp_path / "two.csv").write_text("well,treatment,role\nA01,DMSO,negcon\nA02,dmso,negcon\n")
    with pytest.raises(ManifestError, match="column treatment: 'DMSO' / 'dmso' differ only"):
        read_platemap(tmp_path / "two.csv")


def test_only_the_grouping_columns_refuse_two_spellings(tmp_path):
    """Case matters in other columns: benzene written aromatic (c1ccccc1) and as cyclohexane
    (C1CCCCC1) are two SMILES, not two spellings of one name."""
    path = tmp_path / "map.tsv"
    path.write_text(
        "well\ttreatment\trole\tsmiles\nA01\tDMSO\tnegcon\tCS(C)=O\n"
        "A02\tbenzene\ttreatment\tc1ccccc1\nA03\tcyclohexane\ttreatment\tC1CCCCC1\n"
    )
    assert read_platemap(path)["smiles"].tolist() == ["CS(C)=O", "c1ccccc1", "C1CCCCC1"]
    path.write_text("well\ttreatment\trole\nA01\tDMSO\tnegcon\nA02\tx\tNegcon\n")
    with pytest.raises(ManifestError, match="column role: 'Negcon' / 'negcon' differ only"):
        read_platemap(path)


def test_the_cleanup_is_said_once_per_file_and_process(tmp_path, caplog):
    """The workflow's start-up and every re-parse read a sheet more than once: one warning."""
    path = tmp_path / "map.tsv"
    path.write_text("well\ttreatment\nA01\tDMSO \n")
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            read_sheet(path)
    assert len([r for r in caplog.records if "whitespace stripped" in r.getMessage()]) == 1


def test_a_trailing_delimiter_and_blank_rows_are_left_out_and_said(tmp_path, caplog):
    """A trailing tab on every line is no 'Unnamed: 3' column (carried as a Metadata_ column),
    and a spreadsheet's empty row (tabs only) no well ''; a column with values but no header
    is refused, as is a data line longer than the header (pandas would shift the columns)."""
    path = tmp_path / "map.tsv"
    path.write_text("well\ttreatment\trole\t\nA01\tDMSO\tnegcon\t\n\t\t\t\nA02\tx\ttreatment\t\n")
    with caplog.at_level(logging.INFO):
        assert read_sheet(path).to_dict("list") == {
            "well": ["A01", "A02"],
            "treatment": ["DMSO", "x"],
            "role": ["negcon", "treatment"],
        }
    assert f"{path}: left out 1 column(s) without a header or a value and 1 blank row(s)" in (
        caplog.text
    )
    assert list(read_platemap(path)["well"]) == ["A01", "A02"]
    path.write_text("well\ttreatment\t\nA01\tDMSO\tnote\n")
    with pytest.raises(ValueError, match=r"column 3 has no header but values \(data row 1: 'note'"):
        read_sheet(path)
    path.write_text("well\ttreatment\nA01\tDMSO\t\n")
    with pytest.raises(ValueError, match="line 2 has 3 fields but the header has 2 .a stray tab"):
        read_sheet(path)


def test_a_file_in_another_encoding_is_named_with_the_encoding(tmp_path):
    """Excel's plain "CSV" is Windows-1252 (Latin-1 for these letters): not a codec error."""
    for name in ("map.csv", "map.platemap"):  # by its name, and sniffed
        path = tmp_path / name
        path.write_bytes("well,treatment\nA01,caf\u00e9ine\n".encode("latin-1"))
        with pytest.raises(ValueError, match="not UTF-8 text .byte 0xe9 on line 2; Latin-1") as e:
            read_sheet(path)
        assert str(e.value).startswith(f"{path}: ") and 'save it as UTF-8 (Excel: "CSV UTF-8")' in (
            str(e.value)
        )
