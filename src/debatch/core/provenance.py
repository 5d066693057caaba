"""How a file was made, written into the file itself: code version, the job's settings and the
sizes of its inputs. Parquet keeps it as key-value metadata (key ``debatch``), AnnData in
``uns["debatch"]``, so a table found on a share says where it came from without the run folder.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow.parquet as pq

import debatch

KEY = "debatch"


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    """debatch's version and, in a git checkout, its commit (``+dirty`` with local changes)."""
    source = Path(debatch.__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return debatch.__version__
    return f"{debatch.__version__}+{commit}" if commit else debatch.__version__


def code_version() -> str:
    """debatch's version, with the git commit it runs from (``+dirty`` with local changes)."""
    return _code_version()


def job_provenance(
    step: str, settings: Mapping, inputs: Iterable[str], made_from: str | None = None
) -> dict:
    """The record of one job: step (rule) name, code version, settings (a mapping, or
    anything with ``items()`` such as a Snakemake job's params), input sizes, and
    (``made_from``: a Parquet input, e.g. a gathered shard) that input's own record, so a
    per-plate file gathered from temporary shards still says how the shards were made."""
    record = {
        "step": step,
        "code": _code_version(),
        "settings": json.loads(json.dumps(dict(settings.items()), default=str)),
        "inputs": {str(path): os.path.getsize(path) for path in inputs if os.path.isfile(path)},
    }
    if made_from is not None:
        record["made_from"] = read_parquet_provenance(made_from)
    return record


def encode(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True).encode()


def read_parquet_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance a Parquet file carries, or None."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(KEY.encode())
    return json.loads(raw) if raw else None
