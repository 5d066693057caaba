"""Well names <-> plate positions: one implementation, right past row Z (1536-well plates)."""

import pytest

from debatch.core.wells import normalise_well, row_name, well_name, well_position


def test_well_positions():
    assert well_position("A01") == (0, 0)
    assert well_position("p24") == (15, 23)
    assert well_position("AF48") == (31, 47)  # 1536-well plates
    with pytest.raises(ValueError, match="well 'r01c01' is not a plate position"):
        well_position("r01c01")


def test_row_names_continue_past_z_like_plate_readers():
    assert [row_name(r) for r in (0, 25, 26, 27, 31)] == ["A", "Z", "AA", "AB", "AF"]
    for row in range(40):
        for col in (0, 8, 47):
            assert well_position(well_name(row, col)) == (row, col)


def test_normalised_names_pad_the_column():
    assert normalise_well("b7") == normalise_well("B07") == well_name(1, 6) == "B07"
    assert normalise_well(" aa3 ") == "AA03"
