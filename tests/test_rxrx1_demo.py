"""The RxRx1-shaped synthetic screen (debatch.demo.rxrx1): RxRx1's layout and metadata exactly,
the same screen for a seed, a design of at least 50 siRNA classes in 12 experiments of 2 cell
types at the defaults, truth the truth tools read, the demo's own rendering unchanged by the
sixth stain, config/rxrx1_screen.yaml equal to the defaults, the figures' tabulation
(tools/docs.py rxrx1), and a small screen converted and run through the workflow."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from debatch.demo import rxrx1
from debatch.demo.batches import batch_effects, vignetting_field
from debatch.demo.design import KNOBS
from debatch.demo.render import render_site
from debatch.evaluate.truth import read_truth
from debatch.ingest.rxrx1 import convert
from debatch.settings import DEMO, RXRX1_SCREEN, TREATMENT
from test_settings import commented_keys

from conftest import REPO, docs_tool
from workflow_helpers import TINY_OVERLAY, snakemake, write_config

# a screen small enough to render in a second or two: 2 cell types x 2 experiments
SMALL = {
    "cell_types": ["HEPG2", "U2OS"],
    "experiments": 2,
    "test_experiments": 1,
    "validation_experiments": 0,
    "sirnas": 5,
    "inactive": 1,
    "close_pairs": 1,
    "positive_controls": 1,
    "poscon_wells": 1,
    "negcon_wells": 3,
    "image_size": 96,
    "cells_per_site": 10.0,
}


@pytest.fixture(scope="module")
def small_screen(tmp_path_factory):
    out = tmp_path_factory.mktemp("rxrx1_demo") / "screen"
    rxrx1.generate(out, SMALL)
    return out


def test_default_screen_has_50_classes_in_12_experiments_of_2_cell_types():
    rows = rxrx1.metadata({})
    assert list(rows.columns) == list(rxrx1.METADATA_COLUMNS)
    assert rows["experiment"].nunique() >= 12 and rows["cell_type"].nunique() >= 2
    treatments = rows[rows["well_type"] == "treatment"]
    assert treatments["sirna"].nunique() >= 50
    assert set(rows["well_type"]) == {"treatment", "positive_control", "negative_control"}
    assert set(rows.loc[rows["well_type"] == "negative_control", "sirna_id"]) == {1138}
    assert all(sorted(sites) == [1, 2] for _, sites in rows.groupby("well_id")["site"])
    assert all(re.fullmatch(r"(HEPG2|HUVEC|RPE|U2OS)-\d\d", e) for e in rows["experiment"])
    assert (rows["cell_type"] == rows["experiment"].str.split("-").str[0]).all()
    # every plate holds each siRNA, so every experiment can be classified into all classes
    per_plate = treatments.groupby(["experiment", "plate"])["sirna"].nunique()
    assert (per_plate == treatments["sirna"].nunique()).all()
    splits = rxrx1.experiments({})
    assert set(splits["dataset"]) == {"train", "test"}
    assert set(splits["split"]) == {"train", "val", "test"}
    assert (splits.groupby("cell_type")["split"].nunique() == 3).all()


def test_the_screen_is_rxrx1s_layout_as_8_bit_6_channel_pngs(small_screen):
    rows = pd.read_csv(small_screen / "metadata.csv", dtype=str)
    assert list(rows.columns) == list(rxrx1.METADATA_COLUMNS)
    assert rows.equals(rxrx1.metadata(SMALL).astype(str))
    pngs = sorted(p.relative_to(small_screen) for p in small_screen.glob("images/**/*.png"))
    expected = sorted(
        small_screen.joinpath(
            "images", r.dataset, r.experiment, f"Plate{r.plate}", f"{r.well}_s{r.site}_w{k}.png"
        ).relative_to(small_screen)
        for r in rows.itertuples()
        for k in range(1, 7)
    )
    assert pngs == expected and len(pngs) == 6 * len(rows)
    image = Image.open(small_screen / pngs[0])
    assert image.mode == "L" and image.size == (96, 96)
    assert set(rows["site"]) == {"1", "2"}
    assert rows["site_id"].tolist() == [
        f"{r.experiment}_{r.plate}_{r.well}_{r.site}" for r in rows.itertuples()
    ]
    # the stains differ, and each is lit without saturating
    planes = [np.asarray(Image.open(small_screen / p)) for p in pngs[:6]]
    assert len({p.tobytes() for p in planes}) == 6
    assert all(3 < p.mean() < 100 and (p == 255).mean() < 0.01 for p in planes)


def test_the_same_seed_gives_the_same_bytes_another_seed_another_screen(small_screen, tmp_path):
    rxrx1.generate(tmp_path / "again", SMALL, jobs=2)
    for path in sorted(small_screen.rglob("*")):
        if path.is_file():
            assert (
                path.read_bytes()
                == (tmp_path / "again" / path.relative_to(small_screen)).read_bytes()
            )
    rxrx1.generate(tmp_path / "other", {**SMALL, "seed": 1})
    first = "images/train/HEPG2-01/Plate1"
    name = sorted(p.name for p in (small_screen / first).glob("*_w1.png"))[0]
    other = tmp_path / "other" / first / name
    assert not other.exists() or other.read_bytes() != (small_screen / first / name).read_bytes()


def test_the_truth_is_read_by_the_truth_tools_and_marks_the_inactive(small_screen):
    truth = read_truth([small_screen / "truth" / "treatments.tsv"])
    table = rxrx1.sirnas(SMALL)
    assert set(truth["treatment"]) == set(table["sirna"])
    inactive = set(truth.loc[~truth["active"], "treatment"])
    assert len(inactive) == SMALL["inactive"] + 1 and rxrx1.NEGCON_SIRNA in inactive
    fx = json.loads((small_screen / "truth" / "batch_effects.json").read_text())
    assert set(fx) == {"HEPG2-01", "HEPG2-02", "U2OS-01", "U2OS-02"}
    assert set(fx["HEPG2-01"]["gain"]) == set(rxrx1.RENDERED)  # the sixth stain has its own


def test_sirna_effects_are_small_overlapping_and_partly_cell_type_specific():
    table = rxrx1.sirnas({})
    shifts = table.set_index("sirna")[[f"log_{k}" for k in KNOBS]]
    treated = shifts.loc[table.loc[table["well_type"] == "treatment", "sirna"]]
    active = treated[(treated != 0).any(axis=1)]
    assert (active.abs().max(axis=1) <= 1.5 * 0.2 * 1.25 + 1e-9).all()  # subtle: at most ~x1.45
    assert ((active != 0).sum() > 0).sum() >= 6  # many siRNAs share each knob
    close = table[table["close_to"] != ""]
    gaps = [
        np.linalg.norm(shifts.loc[a] - shifts.loc[b])
        for a, b in close[["sirna", "close_to"]].values
    ]
    distances = np.linalg.norm(active.to_numpy()[:, None] - active.to_numpy()[None], axis=-1)
    assert len(close) == 8 and np.median(gaps) < 0.5 * np.median(distances[distances > 0])
    per_type = rxrx1.effects({}).set_index(["cell_type", "sirna"])
    log_a, log_b = (np.log(per_type.loc[t].loc[active.index]) for t in ("HEPG2", "U2OS"))
    base = rxrx1.cell_types({}).set_index("cell_type")[list(KNOBS)]
    assert not np.allclose(base.loc["HEPG2"], base.loc["U2OS"])
    specific = (log_a - np.log(base.loc["HEPG2"])).to_numpy().ravel()
    other = (log_b - np.log(base.loc["U2OS"])).to_numpy().ravel()
    assert 0.3 < np.corrcoef(specific, other)[0, 1] < 0.99  # shared, but not the same


# the demo's five channels as rendered before the sixth stain was added: per batch, each
# channel's mean intensity, the nuclei and their pixels
DEMO_RENDERING = {
    "b1": (
        {"DNA": 7192.186, "ER": 4509.1915, "RNA": 11328.2349, "AGP": 11018.9863, "Mito": 6682.0191},
        38,
        4517,
    ),
    "b2": (
        {"DNA": 6974.8393, "ER": 6368.5567, "RNA": 6811.8995, "AGP": 6887.6667, "Mito": 5537.7546},
        40,
        4934,
    ),
}


def test_the_demos_own_rendering_is_unchanged_by_the_sixth_stain():
    """The demo's five channels, batch effects and labels are as before the sixth stain was
    added (the draws for a sixth channel come after all of the five's). Summaries, not a hash of
    the bytes: CPUs with other SIMD widths round a few last bits differently (a hash pinned on
    one failed on another), while a change of the draws moves every figure."""
    demo = DEMO.merge({"image_size": 96, "confluence": 0.5})
    for batch, (means, n_nuclei, nucleus_pixels) in DEMO_RENDERING.items():
        fx = batch_effects(batch, demo)
        rng = np.random.default_rng([0, 1])
        effect = np.array([1.2, 1, 1, 0.9, 1.1, 1, 1, 1.0])
        images, nuclei, _, _ = render_site(rng, demo, fx, effect, vignetting_field(fx, 96))
        got = {channel: float(image.astype(np.float64).mean()) for channel, image in images.items()}
        assert list(got) == list(means)
        np.testing.assert_allclose(list(got.values()), list(means.values()), rtol=1e-5)
        assert nuclei.max() == n_nuclei
        assert abs(int((nuclei > 0).sum()) - nucleus_pixels) <= 0.005 * nucleus_pixels


def test_config_rxrx1_screen_yaml_is_the_defaults_each_key_commented():
    path = REPO / "config" / "rxrx1_screen.yaml"
    assert yaml.safe_load(path.read_text()) == RXRX1_SCREEN.defaults
    keys = {*RXRX1_SCREEN.defaults, *(f"batch.{k}" for k in RXRX1_SCREEN.defaults["batch"])}
    assert sorted(keys - commented_keys(path.read_text())) == []
    with pytest.raises(ValueError, match="rxrx1_screen: test_experiments"):
        RXRX1_SCREEN.merge({"experiments": 2, "test_experiments": 1, "validation_experiments": 1})


def fake_run(results, accuracies: dict, selected: dict | None = None) -> None:
    """models/{method}/seed{k}/ with a two-epoch training log: ``accuracies`` method -> per-seed
    held-out cell accuracy of the last epoch (well accuracy = that + 0.1; epoch 1 = 0.01)."""
    for method, per_seed in accuracies.items():
        for seed, accuracy in enumerate(per_seed):
            folder = results / "models" / method / f"seed{seed}"
            folder.mkdir(parents=True)
            log = pd.DataFrame(
                {
                    "epoch": [1, 2],
                    "holdout_acc": [0.01, accuracy],
                    "holdout_well_acc": [0.11, accuracy + 0.1],
                }
            )
            log.to_csv(folder / "training_log.tsv", sep="\t", index=False)
            card = {"selected_epoch": selected[method]} if selected and method in selected else {}
            (folder / "model.json").write_text(json.dumps(card))
            (folder / "model.pt").write_bytes(b"")  # finished: a model without one is skipped


def test_the_rxrx1_page_tabulates_ood_accuracy_and_the_goal(tmp_path):
    docs = docs_tool()
    fake_run(
        tmp_path / "met",
        {
            "erm": [0.20, 0.22, 0.21],
            "deepnoise": [0.30, 0.29, 0.31],
            "abra_plate_within": [0.30, 0.30, 0.30],
            "abra": [0.25, 0.26, 0.27],
        },
    )
    page = docs.rxrx1_page(tmp_path / "met")
    row = next(line for line in page.splitlines() if line.startswith("| abra_plate_within |"))
    assert "| 3 | 2 | 0.300 ± 0.000 | 0.400 ± 0.000 | +0.090 [" in row
    assert "within the interval: met (abra_plate_within: +9.0 points vs ERM" in page
    # a model whose selection chose epoch 1 is read at epoch 1: abra's best then falls short
    fake_run(
        tmp_path / "selected",
        {"erm": [0.20, 0.22], "deepnoise": [0.30, 0.29], "abra_plate_within": [0.30, 0.30]},
        selected={"abra_plate_within": 1},
    )
    page = docs.rxrx1_page(tmp_path / "selected")
    assert "| abra_plate_within | 2 | 1 | 0.010 ± 0.000 | 0.110 ± 0.000 |" in page
    assert ": NOT met (abra_plate_within:" in page
    docs.write_rxrx1(tmp_path / "selected", tmp_path / "rxrx1.md")
    assert (tmp_path / "rxrx1.md").read_text() == page
    (tmp_path / "selected" / "models" / "erm" / "seed1" / "model.pt").unlink()  # training
    assert "| erm | 1 |" in docs.rxrx1_page(tmp_path / "selected")


@pytest.mark.slow
def test_a_small_screen_converts_and_runs_to_the_report(small_screen, tmp_path):
    """The generator's metadata.csv through RxRx1's converter and the workflow with
    config/rxrx1.yaml (whole sites; the WILDS split from the sheet: the test experiments held
    out, site 2 of the others the ID test) to the ranking, the report and its WILDS table,
    scored against the generator's truth."""
    sheet = convert([small_screen / "metadata.csv"], small_screen / "images", tmp_path / "sheet")
    assert list(sheet["batch"]) == ["HEPG2-01", "HEPG2-02", "U2OS-01", "U2OS-02"]
    run = {
        "results": str(tmp_path / "results"),
        "plates": str(tmp_path / "sheet" / "plates.tsv"),
        "train": {
            **{k: TINY_OVERLAY["train"][k] for k in ("width", "embedding_dim", "batch_size")},
            "epochs": 1,
            "lr_schedule_epochs": 1,
            "methods": ["erm", "abra_plate_within"],
        },
        "segment": {"propagate": {"nucleus_diameter": 10.0}},
        "demo": {"truth": str(small_screen / "truth")},
    }
    overlay = tmp_path / "run.yaml"
    overlay.write_text(yaml.safe_dump(run))
    base = write_config(tmp_path, {})
    snakemake(tmp_path, [base, REPO / "config" / "rxrx1.yaml", overlay])
    results = tmp_path / "results"
    ranking = pd.read_csv(results / "report" / "ranking.tsv", sep="\t")
    assert set(ranking["method"]) == {"erm", "abra_plate_within"}
    wells = pd.read_parquet(results / "profiles" / "erm_seed0" / "wells_normalised.parquet")
    assert set(wells["Metadata_Batch"]) == set(sheet["batch"])
    assert set(wells[TREATMENT]) >= set(rxrx1.sirnas(SMALL)["sirna"]) - {rxrx1.NEGCON_SIRNA}
    assert "HEPG2-02" in (results / "report" / "index.html").read_text()
    wilds = pd.read_csv(results / "report" / "wilds.tsv", sep="\t")
    assert set(wilds["unit"]) == {"site"} and wilds["OOD test acc mean"].notna().all()
    card = json.loads((results / "models" / "erm" / "seed0" / "model.json").read_text())
    assert card["holdout_batches"] == ["HEPG2-02", "U2OS-02"] and card["id_sites"] == [2]
    metrics = json.loads(
        (results / "diagnostics" / "erm_seed0" / "none" / "metrics.json").read_text()
    )
    truth = metrics["truth"]  # scored against the generator's truth (demo.truth)
    assert truth["n_active"] == SMALL["sirnas"] - SMALL["inactive"] + 1  # + the positive control
    assert truth["n_inactive"] == SMALL["inactive"]  # EMPTY is the reference, not scored
