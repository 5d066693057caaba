"""docs/extending.md, step by step: a correction, a training method's step loss and a metric
registered as the guide says are run, trained and scored by the real code; a stage added to the
workflow is scheduled once per plate."""

import textwrap

import numpy as np
import pandas as pd
import pytest
import torch.nn.functional as F
import yaml

from debatch import settings
from debatch.cnn import methods
from debatch.cnn.train import train_model
from debatch.evaluate import diagnostics
from debatch.evaluate.diagnostics import compute_metrics
from debatch.pipeline.params import correction_params
from debatch.profiles.correct import CORRECTORS, correct
from debatch.report.tables import LABELS, scores_table
from debatch.settings import BATCH, ROLE, feature_columns

from builders import TINY_TRAIN, wells_table, write_plates
from conftest import REPO
from workflow_helpers import scheduled_rules, tiny_workdir

FAST = {"map_null_size": 2000}


def center(wells: pd.DataFrame, params: dict, control_role: str) -> pd.DataFrame:
    """The guide's toy correction: each batch's features minus its negcon wells' median, times
    ``center_scale``."""
    out = wells.copy()
    features = feature_columns(wells.columns)
    for _, rows in wells.groupby(BATCH).groups.items():
        batch = wells.loc[rows]
        median = batch.loc[batch[ROLE] == control_role, features].median()
        out.loc[rows, features] = (batch[features] - median) * params.get("center_scale", 1.0)
    return out


def test_a_registered_correction_is_run_scored_and_given_only_its_keys(monkeypatch):
    monkeypatch.setitem(CORRECTORS, "center", center)
    wells = wells_table(batch_shift=3.0)
    centred = correct(wells, "center")
    negcon = centred[centred[ROLE] == "negcon"]
    medians = negcon.groupby(BATCH)[feature_columns(wells.columns)].median()
    np.testing.assert_allclose(medians.to_numpy(), 0, atol=1e-12)
    before, after = compute_metrics(wells, FAST), compute_metrics(centred, FAST)
    assert after["scores"]["batch"] > before["scores"]["batch"]
    profiles = {"consensus": "median", "center_scale": 2.0, "harmony_theta": 2.0}
    assert correction_params(profiles, "center") == {"consensus": "median", "center_scale": 2.0}


def test_the_corrections_are_registered_allowed_and_in_the_schema():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    enum = schema["properties"]["profiles"]["properties"]["corrections"]["items"]["enum"]
    assert set(CORRECTORS) == set(settings.CORRECTIONS) == set(enum)


def smoothed_cross_entropy(recipe: dict, n_groups: int):
    """The guide's toy step loss: cross-entropy with label smoothing."""

    def loss(model, x, target, groups):
        loss.calls += 1
        embedding = model.forward_features(x)
        ce = F.cross_entropy(model.head(embedding, target).float(), target, label_smoothing=0.1)
        return ce, model.head(embedding), {"loss_ce": ce}

    loss.calls = 0
    smoothed_cross_entropy.made = loss
    return loss


def test_a_registered_step_loss_trains_a_recipe(tmp_path, monkeypatch):
    monkeypatch.setitem(methods.STEP_LOSSES, "smooth", smoothed_cross_entropy)
    monkeypatch.setattr(settings.training, "AUGMENTS", (*settings.AUGMENTS, "smooth"))
    params = {**TINY_TRAIN, "epochs": 1, "method": "smooth", "recipe": {"augment": "smooth"}}
    summary = train_model(write_plates(tmp_path), tmp_path / "run", params)
    assert smoothed_cross_entropy.made.calls >= 1 and np.isfinite(summary["train_acc"])
    log = pd.read_csv(tmp_path / "run" / "training_log.tsv", sep="\t")
    assert np.isfinite(log["loss_ce"]).all() and log["loss_adv"].isna().all()


def test_every_augmentation_has_a_step_loss():
    assert set(methods.STEP_LOSSES) == set(settings.AUGMENTS)


def spread(wells: diagnostics.ScoredWells) -> dict:
    """The guide's toy metric: the spread of the profiles, scored in [0, 1]."""
    value = float(np.std(wells.values))
    return {"value": value, "score": 1 / (1 + value)}


def test_a_registered_metric_is_scored_and_shown(monkeypatch):
    monkeypatch.setitem(diagnostics.BIO_METRICS, "spread", spread)
    monkeypatch.setitem(LABELS, "spread", "spread")
    wells = wells_table()
    metrics = compute_metrics(wells, FAST)
    values = wells[feature_columns(wells.columns)].to_numpy(np.float64)
    assert metrics["bio"]["spread"]["value"] == pytest.approx(np.std(values))
    scores = [entry["score"] for entry in metrics["bio"].values() if entry["score"] is not None]
    assert "spread" in metrics["bio"] and metrics["scores"]["bio"] == pytest.approx(np.mean(scores))
    table = scores_table([{"metrics": {**metrics, "source": "erm_seed0", "correction": "none"}}])
    assert table["spread"].iloc[0] == metrics["bio"]["spread"]["score"]


STAGE_RULE = '''
rule cell_count:
    """Cells per site of a plate (the guide's toy stage)."""
    input:
        res("cells/{plate}.parquet"),
    output:
        res("cell_count/{plate}.tsv"),
    log:
        log_path("cell_count"),
    script:
        "cell_count.py"
'''


@pytest.mark.slow
def test_a_stage_added_to_the_workflow_runs_once_per_plate(tmp_path):
    config = tiny_workdir(tmp_path)
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(f'include: "{REPO / "workflow" / "Snakefile"}"\n\n{STAGE_RULE}')
    (tmp_path / "cell_count.py").write_text(
        textwrap.dedent(
            """\
            import pandas as pd

            cells = pd.read_parquet(snakemake.input[0])
            counts = cells.groupby(["Metadata_Well", "Metadata_Site"]).size()
            counts.rename("cells").to_csv(snakemake.output[0], sep="\\t")
            """
        )
    )
    plates = pd.read_csv(tmp_path / "plates.tsv", sep="\t")["plate"]
    targets = [str(tmp_path / "results" / "cell_count" / f"{plate}.tsv") for plate in plates]
    jobs = scheduled_rules(tmp_path, config, *targets, snakefile=snakefile)
    assert jobs["cell_count"] == len(plates) == 3
    assert jobs["segment"] == len(plates) and "train" not in jobs
