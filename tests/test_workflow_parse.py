"""Parsing the workflow is cheap: a dry run imports no torch and writes nothing."""

import subprocess
import sys

from debatch.demo.plate import write_plate_sheet

from conftest import REPO
from workflow_helpers import write_config


def test_dry_run_imports_no_torch_and_creates_no_results_folder(tmp_path):
    """Every parse (a dry run, --lint, each cluster job's re-parse) must stay light: the start-up
    checks use debatch.settings, never the training modules."""
    write_plate_sheet(tmp_path / "plates.tsv", [("plate01", "batch1")], str(tmp_path / "demo"))
    config = write_config(
        tmp_path,
        {
            "results": str(tmp_path / "results"),
            "plates": str(tmp_path / "plates.tsv"),
            "demo": {"root": str(tmp_path / "demo")},
            "train": {"holdout_batches": []},
        },
    )
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "snakemake",
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(config),
            "--cores",
            "1",
            "-n",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = [
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert "debatch.settings" in imported and "snakemake" in imported
    assert not [name for name in imported if name == "torch" or name.startswith("torch.")]
    assert not (tmp_path / "results").exists()
