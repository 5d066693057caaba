"""debatch as a Snakemake module of another workflow (docs/running.md): a folder with only
config/ and a Snakefile that imports workflow/Snakefile plans the whole run, offline."""

import shutil
import subprocess
import textwrap

import pytest

from conftest import REPO
from workflow_helpers import SNAKEMAKE, TEST_CONFIG

pytestmark = pytest.mark.slow


def test_a_workflow_importing_debatch_as_a_module_dry_runs(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copy(TEST_CONFIG / "plates.tsv", tmp_path / "config" / "plates.tsv")
    overlay = (TEST_CONFIG / "config.yaml").read_text().replace(".test/config/", "config/")
    (tmp_path / "config" / "tiny.yaml").write_text(overlay)
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(
            f"""\
            configfile: "config/config.yaml"


            module debatch:
                snakefile:
                    "{REPO / "workflow" / "Snakefile"}"
                config:
                    config


            use rule * from debatch
            """
        )
    )
    command = [*SNAKEMAKE, "-n", "--cores", "2", "--configfile", "config/tiny.yaml"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    plan = result.stdout + result.stderr
    for rule in ("demo_plate", "segment", "train", "embed", "correct_profiles", "report"):
        assert f"rule {rule}:" in plan or f"localrule {rule}:" in plan, rule
    assert "results_test/report/index.html" in plan
    assert not (tmp_path / "results_test").exists()  # a dry run writes nothing
