"""A model that travels: trained on batches 1-2 in one run, it embeds batch 3 in a second run
with no train job (embed.models_from), and the second run's profiles join the first run's
(profiles.reference), so everything held-out about batch 3 equals the first run's figures."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO
from workflow_helpers import (
    TINY_DEMO_RUN,
    TINY_OVERLAY,
    deep_update,
    scheduled_rules,
    snakemake,
    tiny_workdir,
)

pytestmark = pytest.mark.slow
LATER = "plate03"  # batch3, the tiny screen's held-out batch
SOURCE = "erm_seed0"


def recipe(reference, later_batch):
    """The overlay of docs/running.md's recipe "Score a new batch with an existing model", its
    example names replaced by this test's (tiny_workdir sets results and plates)."""
    text = (REPO / "docs" / "running.md").read_text()
    section = text.split("## Score a new batch with an existing model")[1]
    overlay = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S)[1])
    assert overlay["embed"]["models_from"] == overlay["profiles"]["reference"] == "results"
    overlay["embed"]["models_from"] = overlay["profiles"]["reference"] = str(reference)
    overlay["train"]["holdout_batches"] = [later_batch]
    return {k: v for k, v in overlay.items() if k not in ("results", "plates")}


@pytest.fixture(scope="module")
def runs(tiny_demo_run, tmp_path_factory):
    """(first run's results, second run's results, the second run's dry-run rule counts); the
    first run is the session's shared tiny run (conftest.py), only read here."""
    first = tiny_demo_run[0]
    second = tmp_path_factory.mktemp("second")
    results = first / "results"
    overlay = deep_update(TINY_DEMO_RUN, recipe(results, "batch3"))
    config = tiny_workdir(second, deep_update(overlay, {"demo": {"root": str(first / "demo")}}))
    # the later batch's plate alone, its images where the first run made them
    rows = (second / "plates.tsv").read_text().replace(str(second / "demo"), str(first / "demo"))
    header, *plates = rows.splitlines()
    (second / "plates.tsv").write_text("\n".join([header, *[p for p in plates if LATER in p]]))
    planned = scheduled_rules(second, config)
    snakemake(second, config)
    return results, second / "results", planned


def test_the_later_batch_is_scored_without_a_train_job(runs):
    _, later, planned = runs
    assert "train" not in planned and planned["embed"] == 1 and "report" in planned
    page = (later / "report" / "index.html").read_text()
    assert "frozen" in page and "batch1, batch2" in page


def test_a_frozen_model_embeds_as_in_the_run_that_trained_it(runs):
    first, later, _ = runs
    before = pd.read_parquet(first / "embeddings" / SOURCE / f"{LATER}.parquet")
    after = pd.read_parquet(later / "embeddings" / SOURCE / f"{LATER}.parquet")
    pd.testing.assert_frame_equal(before.filter(like="Metadata_"), after.filter(like="Metadata_"))
    np.testing.assert_allclose(
        after.filter(like="emb_").to_numpy(), before.filter(like="emb_").to_numpy(), atol=1e-5
    )


@pytest.mark.parametrize("source", [SOURCE, "cellprofiler"])
def test_old_and_new_batches_profile_and_score_as_one_run(runs, source):
    """The second run's wells (first run's plates + the later one) and its held-out retrieval
    equal the first run's, where every plate was profiled together."""
    first, later, _ = runs
    correction = TINY_OVERLAY["profiles"]["corrections"][0]
    key = ["Metadata_Plate", "Metadata_Well"]
    wells = [
        pd.read_parquet(run / "profiles" / source / correction / "wells.parquet")
        .sort_values(key)
        .reset_index(drop=True)
        for run in (first, later)
    ]
    pd.testing.assert_frame_equal(wells[1][wells[0].columns], wells[0], atol=1e-5)
    held_out = [
        json.loads((run / "diagnostics" / source / correction / "metrics.json").read_text())[
            "holdout"
        ]
        for run in (first, later)
    ]
    assert held_out[0]["batches"] == ["batch3"] and held_out[0]["wells"] > 0
    for figure in ("knn_accuracy", "map", "wells"):
        assert held_out[1][figure] == pytest.approx(held_out[0][figure], abs=1e-6)
