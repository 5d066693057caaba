"""The tiny demo through a real single-node SLURM with profiles/slurm: jobs go through sbatch,
a plate's short steps in one submission, the GPU rule asks for a GPU, and the profiles equal
those of a local run.

Needs root (to start munge/slurmctld/slurmd via .ci/start-slurm). Skipped with the reason
outside CI when SLURM cannot start; in CI (CI=true) that is a failure instead.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, SLURM_UNREACHABLE
from workflow_helpers import scheduled_rules, snakemake, tiny_workdir

pytestmark = pytest.mark.slow

# the two-plate tiny screen of .test/config with one-CPU jobs: two run at once on the 2-core node
TINY = {
    "demo": {"params": {"cells_per_site": 10}},
    "train": {"holdout_batches": []},
    "threads": {"images": 1, "train": 1},
}
PROFILES = ("wells.parquet", "consensus.parquet")  # the cluster's and a local run's: equal
SLURM_ARGS = [
    "--profile",
    str(REPO / "profiles" / "slurm"),
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "2",
    "--slurm-keep-successful-logs",
]
# Snakemake with the plugin's waits between status checks at most 2 s (slurm_snakemake.py: why)
SLURM_SNAKEMAKE = [sys.executable, str(Path(__file__).with_name("slurm_snakemake.py"))]


def unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"SLURM test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm():
    with pytest.MonkeyPatch.context() as patch:
        configured = os.environ.get("SLURM_CONF", "")
        if os.path.isfile(configured) and os.path.samefile(configured, SLURM_UNREACHABLE):
            patch.delenv("SLURM_CONF")  # the real SLURM's configuration, not conftest's
        if os.geteuid() != 0:
            unavailable("starting SLURM needs root")
        started = subprocess.run(
            ["bash", str(REPO / ".ci" / "start-slurm")], capture_output=True, text=True, timeout=300
        )
        if started.returncode != 0:
            unavailable(f"SLURM did not start: {started.stderr.strip()[-500:]}")
        yield
        # A failed or timed-out run leaves jobs queued; they would block the next run's jobs.
        queued = subprocess.run(
            ["squeue", "-h", "-o", "%i"], capture_output=True, text=True
        ).stdout.split()
        if queued:
            subprocess.run(["scancel", *queued], check=False)


def tiny_run(workdir):
    return tiny_workdir(workdir, TINY, sheet="plates_two.tsv")


def test_jobs_go_through_sbatch_and_match_a_local_run(slurm, tmp_path):
    cluster, local = tmp_path / "cluster", tmp_path / "local"
    cluster.mkdir(), local.mkdir()
    config = tiny_run(cluster)
    planned = scheduled_rules(cluster, config)
    result = snakemake(cluster, config, *SLURM_ARGS, program=SLURM_SNAKEMAKE)
    submitted = re.findall(
        r"submitted with SLURM jobid (\d+) \(log: (\S+?)\)", result.stdout + result.stderr
    )
    # A plate's image steps travel as one submission (group "plate"), its features as another
    # ("features"), a source's corrections and diagnostics as one ("profiles"); the rest alone.
    plates = planned["manifest"]
    alone = ("train", "embed", "well_profiles", "plate_qc", "gallery", "report")
    assert len(submitted) == 2 * plates + planned["metric_bars"] + sum(planned[r] for r in alone)
    assert len(submitted) < (sum(planned.values()) - planned["all"]) / 2
    assert sum("/group_" in log for _, log in submitted) == 2 * plates + planned["metric_bars"]
    for _, log in submitted:
        assert os.path.exists(log), log
    train_ids = [job_id for job_id, log in submitted if "/rule_train/" in log]
    assert len(train_ids) == 1
    info = subprocess.run(
        ["scontrol", "show", "job", train_ids[0]], capture_output=True, text=True
    ).stdout
    assert (
        "JobState=COMPLETED" in info and "gres:gpu:1" in info
    )  # the GPU rule asked SLURM for a GPU

    # the local run makes only the profiles compared (not features, figures or the report)
    compared = [Path("results", "profiles", "erm_seed0", "none", name) for name in PROFILES]
    snakemake(local, tiny_run(local), *(str(local / path) for path in compared))
    for path in compared:
        pd.testing.assert_frame_equal(
            pd.read_parquet(cluster / path), pd.read_parquet(local / path)
        )
