"""Running the real Snakemake workflow from tests, on configs derived from config/config.yaml."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import CORES, REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TEST_CONFIG = REPO / ".test" / "config"
# The tiny screen of .test/config/config.yaml: an overlay of config/config.yaml
TINY_OVERLAY = yaml.safe_load((TEST_CONFIG / "config.yaml").read_text())
TINY_DEMO = TINY_OVERLAY["demo"]["params"]
# what the shared finished run (conftest.py tiny_demo_run) needs beyond the tiny screen of
# .test/config (3 plates, batch3 held out)
TINY_DEMO_RUN = {
    "demo": {"params": {"sites": 2, "image_size": 128, "cells_per_site": 14}},
    "train": {"epochs": 2, "embedding_dim": 16, "batch_size": 64},
    "profiles": {"corrections": ["none", "sphering", "harmony"]},
    "outputs": {"anndata_cells": True},
}


def deep_update(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_config(tmp_path: Path, overrides: dict, replace: dict | None = None) -> Path:
    """The default config with ``overrides`` merged in and ``replace`` keys swapped whole."""
    config = deep_update(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), overrides)
    config.update(replace or {})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tiny_workdir(workdir: Path, overrides: dict | None = None, sheet: str = "plates.tsv") -> Path:
    """The tiny screen of .test/config in ``workdir``: its plate sheet (``sheet``) with the demo
    plates under workdir/demo, results in workdir/results, ``overrides`` merged over the overlay.
    Returns the config written (the default config, the overlay, the overrides)."""
    root = workdir / "demo"
    text = (TEST_CONFIG / sheet).read_text()
    (workdir / "plates.tsv").write_text(text.replace(TINY_OVERLAY["demo"]["root"], str(root)))
    paths = {
        "results": str(workdir / "results"),
        "plates": str(workdir / "plates.tsv"),
        "demo": {"root": str(root)},
    }
    return write_config(workdir, deep_update(deep_update(TINY_OVERLAY, paths), overrides or {}))


def snakemake(
    workdir: Path,
    config: Path | list[Path],
    *args: str,
    check: bool = True,
    snakefile: Path = REPO / "workflow" / "Snakefile",
    program: list[str] = SNAKEMAKE,
) -> subprocess.CompletedProcess:
    """``snakemake`` (``program``) on ``config`` (a list: the config, then overlays in order)."""
    configs = config if isinstance(config, list) else [config]
    command = [
        *program,
        "-s",
        str(snakefile),
        "--directory",
        str(workdir),
        "--configfile",
        *map(str, configs),
        "--cores",
        str(CORES),
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


def scheduled_rules(
    workdir: Path, config: Path, *args: str, snakefile: Path = REPO / "workflow" / "Snakefile"
) -> dict[str, int]:
    """Rule -> job count that a dry run would execute (empty when nothing to do)."""
    # `--quiet rules` last: argparse would read a target after it as another --quiet choice.
    result = snakemake(workdir, config, *args, "--dry-run", "--quiet", "rules", snakefile=snakefile)
    counts = {}
    lines = (result.stdout + result.stderr).splitlines()
    for start, line in enumerate(lines):
        if line.strip().startswith("job") and "count" in line:
            for row in lines[start + 2 :]:
                parts = row.split()
                if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
            break
    return counts
