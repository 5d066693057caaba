"""The users' daily loop: after a finished run, a change reruns exactly its stage and what
depends on it; --until, --forcerun and script edits behave as documented in docs/running.md."""

import shutil

import pytest
import yaml

from conftest import REPO
from workflow_helpers import scheduled_rules, snakemake, tiny_workdir

pytestmark = pytest.mark.slow

UPSTREAM = [
    "demo_plate",
    "manifest",
    "illum",
    "segment",
    "crops",
    "train",
    "embed",
    "well_profiles",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny run made with a private copy of the workflow (its scripts can be edited)."""
    workdir = tmp_path_factory.mktemp("reruns")
    shutil.copytree(REPO / "workflow", workdir / "workflow_copy")
    config = tiny_workdir(workdir, {"train": {"holdout_batches": []}}, sheet="plates_two.tsv")
    snakefile = workdir / "workflow_copy" / "Snakefile"
    snakemake(workdir, config, snakefile=snakefile)
    assert scheduled_rules(workdir, config, snakefile=snakefile) == {}
    return workdir, config, snakefile


def changed_config(run, section, key, value):
    workdir, config, _ = run
    settings = yaml.safe_load(config.read_text())
    block = settings[section]
    for part in key.split(".")[:-1]:
        block = block[part]
    assert block[key.split(".")[-1]] != value
    block[key.split(".")[-1]] = value
    path = workdir / f"config_{section}.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "section, key, value, first",
    [
        ("illum", "smoothing", 0.2, "illum"),
        ("segment", "propagate.threshold_correction", 1.1, "segment"),
        ("crops", "size", 24, "crops"),
        ("train", "lr", 0.002, "train"),
        ("profiles", "aggregate", "mean", "well_profiles"),
    ],
)
def test_a_stage_change_reruns_that_stage_and_downstream_only(run, section, key, value, first):
    workdir, _, snakefile = run
    jobs = scheduled_rules(workdir, changed_config(run, section, key, value), snakefile=snakefile)
    before = UPSTREAM[: UPSTREAM.index(first)]
    assert first in jobs and "report" in jobs, jobs
    assert not set(before) & set(jobs), f"{section} change reran upstream rules: {jobs}"


def test_a_features_change_reruns_features_and_what_follows_only(run):
    """CellProfiler features sit beside the CNN: a features key reruns the features stage and
    the `cellprofiler` source's profiles, never segmentation, crops or a model."""
    workdir, _, snakefile = run
    jobs = scheduled_rules(
        workdir, changed_config(run, "features", "texture_scales", [3, 5]), snakefile=snakefile
    )
    assert jobs["features"] == 2 and jobs["well_profiles"] == 1 and "gather_features" not in jobs
    assert "report" in jobs and not {"illum", "segment", "crops", "train", "embed"} & set(jobs)
    jobs = scheduled_rules(
        workdir,
        changed_config(run, "profiles", "feature_select.corr_threshold", 0.95),
        snakefile=snakefile,
    )
    assert jobs["well_profiles"] == 1 and "features" not in jobs and "train" not in jobs


def test_a_report_setting_reruns_only_the_report(run):
    workdir, _, snakefile = run
    jobs = scheduled_rules(
        workdir, changed_config(run, "report", "title", "renamed"), snakefile=snakefile
    )
    assert set(jobs) == {"report", "all"}


def test_until_stops_after_the_named_rule(run):
    """--until segment (docs/running.md: "to inspect masks") writes the per-plate masks: with
    one shard (the default) the rule named after the stage writes them itself."""
    workdir, _, snakefile = run
    jobs = scheduled_rules(
        workdir,
        changed_config(run, "illum", "smoothing", 0.2),
        "--until",
        "segment",
        snakefile=snakefile,
    )
    assert set(jobs) == {"illum", "segment"}


def test_forcerun_reruns_a_rule_and_its_dependents(run):
    workdir, config, snakefile = run
    jobs = scheduled_rules(workdir, config, "--forcerun", "crops", snakefile=snakefile)
    assert jobs["crops"] == 2 and "train" in jobs and "report" in jobs
    assert "segment" not in jobs and "illum" not in jobs


def test_editing_a_script_reruns_its_rule(run):
    """Snakemake's `code` trigger reruns a rule whose `script:` file is newer than its outputs
    (an edit, or even a touch); library edits under src/ are not tracked (docs/running.md:
    --forcerun)."""
    workdir, config, snakefile = run
    script = snakefile.parent / "scripts" / "report.py"
    original = script.read_text()
    script.write_text(original + "\n# a comment is a code change too\n")
    try:
        assert set(scheduled_rules(workdir, config, snakefile=snakefile)) == {"report", "all"}
    finally:
        script.write_text(original)


@pytest.mark.parametrize(
    "key, value",
    [("mad_epsilon", 1e-6), ("feature_select.outlier_cutoff", 100.0)],
)
def test_the_normalisation_guard_reruns_every_sources_profiles(run, key, value):
    """The MAD floor and the outlier cutoff shape every source's wells (embeddings go through
    drop_outliers too), so changing either reruns the well profiles of the CNN and of
    CellProfiler, and nothing upstream."""
    workdir, _, snakefile = run
    jobs = scheduled_rules(
        workdir, changed_config(run, "profiles", key, value), snakefile=snakefile
    )
    assert jobs["well_profiles"] == 2 and not set(UPSTREAM[:-1]) & set(jobs), jobs
