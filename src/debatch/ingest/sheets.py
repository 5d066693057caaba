"""Reading the tables people write by hand (plate sheet, platemaps, CSV manifests): the one place
where a spreadsheet's habits are undone, so one stray space never makes two batches.

- ``.csv`` is read as comma-separated, ``.tsv`` / ``.txt`` as tab-separated; any other name is
  sniffed and the delimiter found is logged. A byte-order mark (Excel's UTF-8) is ignored; a
  file in another encoding (Excel's plain "CSV" is Windows-1252) is refused naming it.
- Every cell stays the string it was written as: ``001``, ``2021_05_03``, ``1e5``, ``NA`` and
  ``None`` are names, not numbers or missing values.
- Surrounding whitespace of every header and cell is stripped (trailing spaces of a
  spreadsheet export); columns without a header or a value (a trailing tab or comma) and blank
  rows are left out. The log says so once per file and process, with an example.
- A data line with more fields than the header is refused (pandas would silently shift every
  column by one, taking the first as an index).
- ``check_distinct`` refuses names that differ only by case or inner whitespace (``DMSO`` and
  ``dmso``): two spellings of one name would silently become two groups.

``write_sheet`` writes a table (a converter's plate sheet, platemaps) that ``read_sheet`` reads
back cell for cell.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from debatch.core.io import atomic_path

log = logging.getLogger(__name__)

_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
_ENCODING = "utf-8-sig"  # UTF-8, a byte-order mark tolerated
# (real path, what was said): each file's clean-up is logged once per process, however often
# it is read (the workflow's start-up reads a platemap once, its manifest job once more)
_SAID: set[tuple[str, str]] = set()


def _delimiter(path: Path) -> str:
    """The delimiter of ``path``: by its extension, else sniffed from its first lines."""
    if path.suffix.lower() in _DELIMITERS:
        return _DELIMITERS[path.suffix.lower()]
    with open(path, encoding=_ENCODING, newline="") as handle:
        sample = handle.read(65536)
    try:
        found = csv.Sniffer().sniff(sample, delimiters="".join(_NAMES)).delimiter
    except csv.Error:
        raise ValueError(
            f"{path}: cannot tell its delimiter; name it .csv (comma) or .tsv (tab)"
        ) from None
    _say_once(
        path,
        "sniffed",
        logging.INFO,
        "%s: read as %s-separated (sniffed; .csv or .tsv names say it)",
        path,
        _NAMES[found],
    )
    return found


def how_read(path: str | os.PathLike) -> str:
    """How read_sheet splits ``path``'s columns, for messages: "tab-separated (.tsv)"."""
    suffix = Path(path).suffix.lower()
    if suffix in _DELIMITERS:
        return f"{_NAMES[_DELIMITERS[suffix]]}-separated ({suffix})"
    return "with a sniffed delimiter"


def _say_once(path: Path, what: str, level: int, message: str, *args) -> None:
    """Log ``message`` unless this process already said ``what`` about this file."""
    key = (os.path.realpath(path), what)
    if key not in _SAID:
        _SAID.add(key)
        log.log(level, message, *args)


def _not_utf8(path: Path) -> ValueError:
    """The error for a file that is not UTF-8: where, and what to do."""
    data = path.read_bytes()
    try:
        data.decode(_ENCODING)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        where = f"byte 0x{data[error.start]:02x} on line {line}"
    else:  # pragma: no cover - pandas failed on what Python decodes
        where = "a byte UTF-8 does not allow"
    return ValueError(
        f'{path}: not UTF-8 text ({where}; Latin-1 or Windows-1252, as Excel\'s plain "CSV" '
        'saves?): save it as UTF-8 (Excel: "CSV UTF-8")'
    )


def _unreadable(path: Path, error: Exception, delimiter: str | None) -> ValueError:
    """A parser's error in words: a data line longer than the header names both counts."""
    text = " ".join(str(error).split())
    longer = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if longer and delimiter:
        header, line, saw = longer.groups()
        return ValueError(
            f"{path}: line {line} has {saw} fields but the header has {header} (a stray "
            f"{_NAMES.get(delimiter, repr(delimiter))} at its end?); make them agree"
        )
    return ValueError(f"{path}: not a readable table ({text})")


def read_sheet(path: str | os.PathLike, rows: int | None = None) -> pd.DataFrame:
    """A hand-written table as strings (see the module docstring): surrounding whitespace of
    every header and cell stripped, blank columns and rows left out, each logged; a
    ValueError names the file when unreadable. ``rows``: only the first rows (nothing logged:
    a look at part of the file says nothing about the whole)."""
    path = Path(path)
    delimiter = None
    try:
        delimiter = _delimiter(path)
        raw = pd.read_csv(
            path,
            sep=delimiter,
            header=None,  # the header is read as a row: pandas' own would mangle it
            dtype=str,
            keep_default_na=False,
            encoding=_ENCODING,
            nrows=None if rows is None else rows + 1,
        )
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise _unreadable(path, error, delimiter) from None
    headers = raw.iloc[0].tolist()
    original = raw.iloc[1:].reset_index(drop=True)
    original.columns = [name.strip() for name in headers]
    table = original.apply(lambda column: column.str.strip())
    table = _drop_blank(path, table, quiet=rows is not None)
    repeated = sorted(set(table.columns[table.columns.duplicated()]))
    if repeated:
        raise ValueError(f"{path}: column(s) {repeated} appear twice (after stripping spaces)")
    original = original.loc[table.index, table.columns]
    changed = original.to_numpy() != table.to_numpy()
    spaced = [name for name in headers if name != name.strip() and name.strip() in table]
    if rows is None and (spaced or changed.any()):
        _log_stripped(path, original, changed, spaced)
    return table.reset_index(drop=True)


def write_sheet(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``table`` atomically as ``read_sheet`` reads it: comma-separated for ``.csv``, else
    tab-separated, UTF-8, every cell as written (strings stay strings: no index, no NaN)."""
    path = Path(path)
    delimiter = _DELIMITERS.get(path.suffix.lower(), "\t")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep=delimiter, index=False, encoding="utf-8", lineterminator="\n")


def _drop_blank(path: Path, table: pd.DataFrame, quiet: bool) -> pd.DataFrame:
    """``table`` without columns that have neither a header nor a value (a trailing tab or
    comma on every line) and without blank rows (a spreadsheet's empty line), said once; a
    column with values but no header is an error (its values would be carried unnamed)."""
    unnamed = [i for i, name in enumerate(table.columns) if name == ""]
    for i in unnamed:
        values = table.iloc[:, i]
        if (values != "").any():
            line = int(values.ne("").to_numpy().argmax())
            raise ValueError(
                f"{path}: column {i + 1} has no header but values (data row {line + 1}: "
                f"{values.iloc[line]!r}); name it or delete it"
            )
    keep = [i for i in range(table.shape[1]) if i not in unnamed]
    kept = table.iloc[:, keep]
    blank = (kept == "").all(axis=1)
    said = [
        f"{count} {what}"
        for count, what in (
            (len(unnamed), "column(s) without a header or a value"),
            (int(blank.sum()), "blank row(s)"),
        )
        if count
    ]
    if said and not quiet:
        _say_once(path, "blank", logging.WARNING, "%s: left out %s", path, " and ".join(said))
    return kept[~blank]


def _log_stripped(path: Path, original: pd.DataFrame, changed, headers: list[str]) -> None:
    """One log line per file and process: how many cells and headers lost surrounding
    whitespace, and the first of them as it was written (a trailing space is otherwise
    invisible)."""
    if changed.any():
        row, column = (int(i[0]) for i in changed.nonzero())
        example = f"{original.columns[column]} {original.iat[row, column]!r}"
    else:
        example = f"header {headers[0]!r}"
    _say_once(
        path,
        "stripped",
        logging.WARNING,
        "%s: surrounding whitespace stripped from %d cell(s) and %d header(s), e.g. %s",
        path,
        int(changed.sum()),
        len(headers),
        example,
    )


def _key(name: str) -> str:
    """What two spellings of one name share: case and runs of whitespace ignored."""
    return " ".join(name.split()).casefold()


def name_clashes(names: Iterable[str]) -> list[list[str]]:
    """Groups of different names that differ only by case or inner whitespace."""
    spellings: dict[str, set[str]] = {}
    for name in names:
        spellings.setdefault(_key(name), set()).add(name)
    return [sorted(found) for found in spellings.values() if len(found) > 1]


def check_distinct(names: Iterable[str], where: str) -> None:
    """ValueError naming ``where`` when two different names differ only by case or whitespace
    (``DMSO`` / ``dmso``, ``cpd 1`` / ``cpd  1``): they would silently be two groups."""
    clashes = name_clashes(names)
    if clashes:
        raise ValueError(
            f"{where}: {' / '.join(map(repr, clashes[0]))} differ only by case or whitespace; "
            "write each name one way"
        )
