"""End to end: the real Snakemake workflow on a tiny demo screen, through to the report."""

import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml

from debatch.settings import FEATURE_SELECT

from conftest import docs_tool
from workflow_helpers import TINY_DEMO, TINY_DEMO_RUN, scheduled_rules, snakemake

pytestmark = pytest.mark.slow

PLATES = [("plate01", "batch1"), ("plate02", "batch2"), ("plate03", "batch3")]


@pytest.fixture(scope="module")
def finished_run(tiny_demo_run):
    """The tiny screen run to the end (conftest.py: once per session, shared)."""
    return tiny_demo_run


def test_every_cell_flows_from_segmentation_to_embeddings(finished_run):
    workdir, _ = finished_run
    results = workdir / "results"
    for plate, batch in PLATES:
        cells = pd.read_parquet(results / "cells" / f"{plate}.parquet")
        crops = np.load(results / "crops" / f"{plate}.npy", mmap_mode="r")
        table = pd.read_parquet(results / "crops" / f"{plate}.parquet")
        embeddings = pd.read_parquet(results / "embeddings" / "erm_seed0" / f"{plate}.parquet")
        assert len(cells) > 50
        assert len(cells) == len(table) == crops.shape[0] == len(embeddings)
        assert crops.shape[1:] == (5, 32, 32)
        assert set(cells["Metadata_Batch"]) == {batch}
        emb = embeddings.filter(like="emb_")
        assert emb.shape[1] == 16 and np.isfinite(emb.to_numpy()).all()
        np.testing.assert_array_equal(
            embeddings["Metadata_ObjectNumber"], cells["Metadata_ObjectNumber"]
        )


def test_every_cell_has_cellprofiler_features_in_the_cells_tables_order(finished_run):
    workdir, _ = finished_run
    results = workdir / "results"
    for plate, _ in PLATES:
        cells = pd.read_parquet(results / "cells" / f"{plate}.parquet")
        features = pd.read_parquet(results / "features" / f"{plate}.parquet")
        metadata = [c for c in cells if c.startswith("Metadata_")]
        pd.testing.assert_frame_equal(features[metadata], cells[metadata])
        assert features["Cells_AreaShape_Area"].tolist() == cells["Cells_AreaShape_Area"].tolist()
        assert (features.dtypes[len(metadata) :] == np.float32).all()
        np.testing.assert_allclose(  # the same cells, measured the same way, as segmentation's
            features["Nuclei_Intensity_MeanIntensity_DNA"] * 65535,
            cells["Nuclei_Intensity_MeanIntensity_DNA"],
            rtol=1e-4,
        )
    selection = pd.read_csv(
        results / "profiles" / "cellprofiler" / "features.tsv", sep="\t", keep_default_na=False
    )
    kept = selection[selection["kept"]]["feature"]
    assert 10 < len(kept) < len(selection) and set(selection["dropped_by"]) > {""}
    wells = pd.read_parquet(results / "profiles" / "cellprofiler" / "none" / "wells.parquet")
    assert [c for c in wells if not c.startswith("Metadata_")] == kept.tolist()
    assert not any("Location" in c for c in kept)
    # the outlier guard: no kept feature beyond the cutoff after normalisation (a negcon spread
    # near 0 once made one feature reach hundreds of thousands)
    assert wells[kept].abs().max().max() <= FEATURE_SELECT.defaults["outlier_cutoff"]


@pytest.mark.parametrize("source", ["erm_seed0", "cellprofiler"])
def test_every_platemap_well_has_a_finite_profile(finished_run, source):
    workdir, _ = finished_run
    for correction in TINY_DEMO_RUN["profiles"]["corrections"]:
        wells = pd.read_parquet(
            workdir / "results" / "profiles" / source / correction / "wells.parquet"
        )
        for plate, _ in PLATES:
            platemap = pd.read_csv(workdir / "demo" / plate / "platemap.tsv", sep="\t")
            on_plate = wells[wells["Metadata_Plate"] == plate]
            assert sorted(on_plate["Metadata_Well"]) == sorted(platemap["well"])
        features = wells[[c for c in wells if not c.startswith("Metadata_")]].to_numpy()
        assert features.shape[1] > 0 and np.isfinite(features).all()
        assert (wells["Metadata_Object_Count"] > 0).all()
        consensus = pd.read_parquet(
            workdir / "results" / "profiles" / source / correction / "consensus.parquet"
        )
        assert set(consensus["Metadata_Treatment"]) == set(wells["Metadata_Treatment"])


@pytest.mark.parametrize("source", ["erm_seed0", "cellprofiler"])
def test_wells_open_as_anndata_with_the_parquets_values_and_provenance(finished_run, source):
    """A source's wells.h5ad is its Parquet files in one AnnData: X the uncorrected wells, each
    correction in obsm for the same wells, rows named {plate}_{well}; both say which job made
    them."""
    import anndata

    from debatch.core.provenance import read_parquet_provenance

    workdir, _ = finished_run
    folder = workdir / "results" / "profiles" / source
    wells = pd.read_parquet(folder / "none" / "wells.parquet")
    adata = anndata.read_h5ad(folder / "wells.h5ad")
    features = [c for c in wells if not c.startswith("Metadata_")]
    assert list(adata.var_names) == features
    np.testing.assert_array_equal(adata.X, wells[features].to_numpy(np.float32))
    names = (wells["Metadata_Plate"] + "_" + wells["Metadata_Well"]).tolist()
    assert list(adata.obs_names) == names
    harmony = pd.read_parquet(folder / "harmony" / "wells.parquet")
    harmony.index = harmony["Metadata_Plate"] + "_" + harmony["Metadata_Well"]
    np.testing.assert_array_equal(
        adata.obsm["X_harmony"], harmony.loc[names].filter(like="harmony_pc_").to_numpy(np.float32)
    )
    assert adata.obsm["X_sphering"].shape == adata.shape
    if source == "cellprofiler":
        assert set(adata.var["compartment"]) <= {"Cells", "Cytoplasm", "Nuclei"}
        assert set(adata.var["channel"]) & {"DNA", "AGP"}
    made = read_parquet_provenance(folder / "none" / "wells.parquet")
    assert made["step"] == "correct_profiles" and made["settings"]["profiles"]
    assert adata.uns["debatch"]["step"] == "source_h5ad"
    cells = read_parquet_provenance(workdir / "results" / "cells" / f"{PLATES[0][0]}.parquet")
    assert cells["step"] == "segment" and "made_from" not in cells  # one shard: one job
    assert cells["settings"]["segment"]["propagate"]["nucleus_diameter"] > 0


def test_scanpy_runs_neighbours_and_umap_on_the_wells_without_glue(finished_run):
    import scanpy as sc

    workdir, _ = finished_run
    wells = sc.read_h5ad(workdir / "results" / "profiles" / "cellprofiler" / "wells.h5ad")
    sc.pp.neighbors(wells, n_neighbors=4, use_rep="X_harmony")
    sc.tl.umap(wells, random_state=0)
    assert wells.obsm["X_umap"].shape == (wells.n_obs, 2) and wells.obsp["connectivities"].nnz
    assert wells.obs["Metadata_Treatment"].dtype == "category"  # what sc.pl colours by
    sc.pp.neighbors(wells, n_neighbors=4)  # the stored X_pca, as scanpy's default
    assert "X_pca" in wells.obsm


def test_cells_open_as_anndata_with_the_cells_the_wells_are_made_from(finished_run):
    import anndata

    workdir, _ = finished_run
    results = workdir / "results"
    for plate, _ in PLATES:
        embeddings = pd.read_parquet(results / "embeddings" / "erm_seed0" / f"{plate}.parquet")
        cells = anndata.read_h5ad(results / "cells" / "erm_seed0" / f"{plate}.h5ad")
        np.testing.assert_array_equal(cells.X, embeddings.filter(like="emb_").to_numpy(np.float32))
        wells = cells.obs["Metadata_Well"].astype(str).tolist()
        assert wells == embeddings["Metadata_Well"].tolist()
        profiled = pd.read_parquet(results / "crops" / f"{plate}.parquet")
        measured = anndata.read_h5ad(results / "cells" / "cellprofiler" / f"{plate}.h5ad")
        key = ["Metadata_Well", "Metadata_Site", "Metadata_ObjectNumber"]
        obs = measured.obs[key].astype(str).reset_index(drop=True)
        pd.testing.assert_frame_equal(obs, profiled[key].astype(str))
        assert not any("Location" in name for name in measured.var_names)
        assert measured.uns["debatch"]["step"] == "cells_h5ad"
        assert list(measured.obs_names[:1]) == [
            "_".join(map(str, profiled.loc[0, ["Metadata_Plate", *key]]))
        ]


def test_report_has_ranking_and_every_figure(finished_run):
    workdir, _ = finished_run
    report = workdir / "results" / "report"
    html = (report / "index.html").read_text()
    assert "<table id='ranking' class='sortable'>" in html and "<table id='training'>" in html
    assert "<table id='hits' class='sortable'>" in html and "<nav class='toc'" in html
    assert "id='section-config'" in html and "Made by debatch " in html
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    corrections = TINY_DEMO_RUN["profiles"]["corrections"]
    # per source (erm, cellprofiler): PCA per correction + metric bars + UMAP; the cell
    # gallery; cells-per-well heatmaps; per plate (3, under report.max_plate_figures): QC
    # heatmap, segmentation overlays, illumination
    assert len(images) == 2 * (len(corrections) + 2) + 1 + 1 + 3 * len(PLATES)
    for source in ("erm_seed0", "cellprofiler"):
        assert (workdir / "results" / "diagnostics" / source / "umap.png").stat().st_size > 5000
        assert f"UMAP of the well profiles of {source}" in html
    hits = pd.read_csv(report / "hits.tsv", sep="\t")
    assert hits.columns.tolist()[:4] == ["treatment", "mAP", "corrected p", "active"]
    assert set(hits["active"]) <= {"yes", "no"} and len(hits) == TINY_DEMO["n_treatments"]
    for plate, _ in PLATES:
        for name in ("heatmaps", "overlays", "illum"):
            assert f"href='plates/{plate}/{name}.png'" in html
            assert (report / "plates" / plate / f"{name}.png").is_file()
    assert "Cells per treatment" in html
    for plate, _ in PLATES:
        assert (
            f"{plate}: segmentation overlays" in html and f"{plate}: cell count and focus" in html
        )
    assert all(len(image) > 1000 for image in images)
    for correction in corrections:
        assert f"erm_seed0 / {correction}" in html and f"cellprofiler / {correction}" in html
    ranking = pd.read_csv(workdir / "results" / "report" / "ranking.tsv", sep="\t")
    assert sorted(ranking["correction"]) == sorted(corrections * 2)
    assert set(ranking["method"]) == {"erm", "cellprofiler"}
    erm = ranking[ranking["method"] == "erm"]
    assert erm["vs cellprofiler low"].notna().all()  # every CNN row against CellProfiler's
    assert ranking["overall"].is_monotonic_decreasing
    training = pd.read_csv(
        workdir / "results" / "models" / "erm" / "seed0" / "training_log.tsv", sep="\t"
    )
    assert training["holdout_acc"].notna().all()  # batch3 held out and scored


def test_demo_metrics_score_against_ground_truth(finished_run):
    workdir, _ = finished_run
    truth = pd.read_csv(workdir / "demo" / "plate01" / "truth" / "treatments.tsv", sep="\t")
    compounds = truth[truth["treatment"] != "DMSO"]
    for correction in TINY_DEMO_RUN["profiles"]["corrections"]:
        path = workdir / "results" / "diagnostics" / "erm_seed0" / correction / "metrics.json"
        metrics = json.loads(path.read_text())
        for entry in [*metrics["batch"].values(), *metrics["bio"].values()]:
            assert entry["score"] is None and entry["reason"] or 0 <= entry["score"] <= 1
        assert metrics["n_batches"] == 3 and 0 <= metrics["scores"]["overall"] <= 1
        assert metrics["truth"]["n_active"] == compounds["active"].sum()
        assert metrics["truth"]["n_inactive"] == (~compounds["active"]).sum()
        assert set(metrics["truth"]["calls"]) == set(compounds["treatment"])
        assert metrics["holdout"]["batches"] == ["batch3"]


def test_snakemake_report_zip_has_the_key_figures(finished_run, tmp_path):
    workdir, config = finished_run
    snakemake(workdir, config, "--report", str(tmp_path / "report.zip"))
    archive = zipfile.ZipFile(tmp_path / "report.zip")
    for figure in (
        "pca.png",
        "metric_bars.png",
        "umap.png",
        "plate_qc.png",
        "ranking.tsv",
        "hits.tsv",
        "index.html",
    ):
        assert any(name.endswith(figure) for name in archive.namelist()), figure
    page = archive.read("report/report.html").decode()
    assert "Cells per well on every plate" in page and "activity_weight x activity" in page


def test_nothing_to_do_after_a_finished_run(finished_run):
    assert scheduled_rules(*finished_run) == {}


def gpu_resources(workdir, config, *args) -> dict[str, set[str]]:
    """Rule -> the gpu resources its jobs in a dry run carry (train and embed)."""
    result = snakemake(workdir, config, "--dry-run", *args)
    found = {}
    for block in result.stdout.split("\n\n"):
        rule = re.search(r"^rule (train|embed):$", block, re.MULTILINE)
        resources = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE)
        if rule and resources:
            gpu = re.search(r"\bgpu=(\d+)", resources[1])
            found.setdefault(rule[1], set()).add(gpu[1] if gpu else "none")
    return found


def test_cpu_trainings_do_not_queue_for_the_gpu(finished_run):
    """The workstation profile's gpu=1 runs jobs that may use a GPU one at a time; with
    device cpu, train and embed carry no GPU, so several run at once where cores allow."""
    workdir, config = finished_run
    assert gpu_resources(workdir, config, "--forcerun", "train") == {
        "train": {"1"},
        "embed": {"1"},
    }
    on_cpu = yaml.safe_load(config.read_text())
    on_cpu["train"]["device"] = on_cpu["embed"]["device"] = "cpu"
    changed = workdir / "config_cpu.yaml"
    changed.write_text(yaml.safe_dump(on_cpu, sort_keys=False))
    assert gpu_resources(workdir, changed) == {"train": {"0"}, "embed": {"0"}}


def test_illum_change_reruns_illum_and_downstream_only(finished_run):
    workdir, config = finished_run
    text = config.read_text()
    changed = workdir / "config_illum.yaml"
    changed.write_text(text.replace("smoothing: 0.1", "smoothing: 0.2"))
    assert changed.read_text() != text
    jobs = scheduled_rules(workdir, changed)
    assert jobs.get("illum") == len(PLATES)
    assert jobs.get("segment") == len(PLATES) and jobs.get("report") == 1
    assert "manifest" not in jobs and "demo_plate" not in jobs


def test_demo_figures_for_the_docs_come_from_the_run(finished_run):
    """`make demo-figures` tabulates the run itself: the docs' demo tables are the report's."""
    docs = docs_tool()
    workdir, _ = finished_run
    results = workdir / "results"
    tables = docs.demo_tables(results)
    ranking = pd.read_csv(results / "report" / "ranking.tsv", sep="\t")
    assert tables["ranking"][["method", "correction"]].equals(ranking[["method", "correction"]])
    assert tables["ranking"]["overall"].tolist() == [f"{v:.3f}" for v in ranking["overall"]]
    assert tables["training"]["method"].tolist() == ["erm"]
    cells = {
        plate: len(pd.read_parquet(results / "crops" / f"{plate}.parquet")) for plate, _ in PLATES
    }
    assert dict(zip(tables["cells"]["plate"], tables["cells"]["cells"])) == cells
    assert sorted(tables["batch"]["correction"]) == sorted(
        TINY_DEMO_RUN["profiles"]["corrections"] * 2
    )
    assert "| rank | method |" in docs.markdown(tables["ranking"])


def test_every_column_written_is_described_in_docs_columns(finished_run):
    """A column added to an output without a line in debatch.settings.columns (the source of
    docs/columns.md) fails here."""
    from debatch.settings.columns import OUTPUT_COLUMNS, meaning

    results = finished_run[0] / "results"
    names = {"plate": PLATES[0][0], "method": "erm", "k": "0", "correction": "harmony"}
    undescribed = []
    # this run has no external source (tests/test_workflow_external.py) and no WILDS protocol
    # (report/wilds.tsv: tests/test_workflow_wilds.py)
    only_elsewhere = ("external/", "report/wilds.tsv")
    for output in [o for o in OUTPUT_COLUMNS if not o.startswith(only_elsewhere)]:
        # embeddings/{source}/ holds the models' sources only
        sources = ["erm_seed0"] + ([] if output.startswith("embeddings/") else ["cellprofiler"])
        for source in sources:
            path = results / output.format(**names, source=source)
            if path.suffix == ".parquet":
                columns = pd.read_parquet(path).columns
            else:
                columns = pd.read_csv(path, sep="\t", nrows=0).columns
            undescribed += [f"{output}: {c}" for c in columns if meaning(output, c) is None]
    assert not undescribed, undescribed
