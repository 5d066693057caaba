"""Well names <-> plate positions, the one implementation every stage uses.

Rows are letters in bijective base 26 (A..Z, then AA, AB, ...: a 1536-well plate has rows
A..AF), columns are numbers; a canonical well name pads the column to two digits (B07).
"""

from __future__ import annotations

import re

_WELL_NAME = re.compile(r"([A-Za-z]{1,2})0*(\d{1,2})")


def row_name(row: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA, 31 -> AF."""
    letters = ""
    row += 1
    while row:
        row, rest = divmod(row - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def well_position(well: str) -> tuple[int, int]:
    """(row, column), 0-based, of a well name such as A01, b7 or AF48."""
    match = _WELL_NAME.fullmatch(str(well).strip())
    if not match:
        raise ValueError(
            f"well {well!r} is not a plate position like A01 (row letter + column number)"
        )
    letters, column = match.groups()
    row = 0
    for letter in letters.upper():
        row = row * 26 + ord(letter) - ord("A") + 1
    return row - 1, int(column) - 1


def well_name(row: int, col: int) -> str:
    """Canonical name of the well at 0-based (row, col): well_name(1, 6) == "B07"."""
    return f"{row_name(row)}{col + 1:02d}"


def normalise_well(well: str) -> str:
    """'b7', 'B7' and 'B07' all mean well B07."""
    return well_name(*well_position(well))
