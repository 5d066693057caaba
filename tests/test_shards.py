"""Shards: a plate's sites split into contiguous blocks and gathered back to the same files."""

import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from debatch.core.images import read_raw_site
from debatch.core.io import NpzWriter
from debatch.core.shards import gather_npy, gather_npz, gather_tables, shard_sites
from debatch.demo.design import CHANNELS
from debatch.demo.plate import generate_plate
from debatch.features.gather import gather_features
from debatch.features.plate import measure_shard
from debatch.features.site import feature_names, measure_site, site_images
from debatch.illum.estimate import compute_plate_illum
from debatch.ingest.manifest import build_manifest, read_platemap
from debatch.segment.gather import check_plate, small_cells_warning
from debatch.segment.shards import segment_shard
from debatch.settings import Channels

SETTINGS = {"method": "propagate", "save_masks": True, "propagate": {"nucleus_diameter": 12.0}}


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    root = tmp_path_factory.mktemp("plate")
    generate_plate(
        root / "P1",
        "P1",
        "b1",
        {
            "rows": 2,
            "cols": 3,
            "sites": 2,
            "image_size": 96,
            "cells_per_site": 10,
            "n_treatments": 2,
            "replicates": 1,
            "n_inactive": 1,
        },
    )
    channels = {name: str(i) for i, name in enumerate(CHANNELS, start=1)}
    manifest = build_manifest(
        "P1",
        "b1",
        root / "P1" / "images",
        "opera_phenix",
        read_platemap(root / "P1" / "platemap.tsv"),
        channels,
    )
    return manifest.sample(frac=1, random_state=0), compute_plate_illum(manifest, list(CHANNELS))


def test_shards_partition_the_sorted_sites_into_contiguous_blocks(plate):
    manifest, _ = plate
    ordered = manifest.sort_values(["Metadata_Well", "Metadata_Site"])
    blocks = [shard_sites(manifest, 5, k) for k in range(5)]
    assert [len(b) for b in blocks] == [3, 3, 2, 2, 2]
    together = pd.concat(blocks)
    assert (
        together[["Metadata_Well", "Metadata_Site"]].values.tolist()
        == ordered[["Metadata_Well", "Metadata_Site"]].values.tolist()
    )
    assert [len(shard_sites(manifest, 20, k)) for k in range(20)].count(0) == 8
    with pytest.raises(ValueError, match="shard 3 does not exist: segment.shards is 3"):
        shard_sites(manifest, 3, 3)


def run_shards(manifest, illum, shards, folder):
    cells, sites, masks = [], [], []
    for shard in range(shards):
        table, site_table = segment_shard(
            manifest,
            shards,
            shard,
            Channels(CHANNELS, "DNA", "AGP"),
            illum,
            SETTINGS,
            folder / f"masks{shard}.npz",
        )
        for frames, frame, name in ((cells, table, "cells"), (sites, site_table, "sites")):
            frame.to_parquet(folder / f"{name}{shard}.parquet")
            frames.append(folder / f"{name}{shard}.parquet")
        masks.append(folder / f"masks{shard}.npz")
    gather_npz(masks, folder / "masks.npz")
    return gather_tables(cells), gather_tables(sites), np.load(folder / "masks.npz")


def test_results_are_identical_whatever_the_shard_count(plate, tmp_path):
    manifest, illum = plate
    (tmp_path / "one").mkdir()
    (tmp_path / "four").mkdir()
    cells_1, sites_1, masks_1 = run_shards(manifest, illum, 1, tmp_path / "one")
    cells_4, sites_4, masks_4 = run_shards(manifest, illum, 4, tmp_path / "four")
    pd.testing.assert_frame_equal(cells_1, cells_4)
    pd.testing.assert_frame_equal(sites_1, sites_4)
    assert len(cells_1) > 30 and len(sites_1) == 12 and sites_1["Count_Cells"].sum() == len(cells_1)
    assert sorted(masks_1.files) == sorted(masks_4.files) and len(masks_1.files) == 24
    for name in masks_1.files:
        np.testing.assert_array_equal(masks_1[name], masks_4[name])
    assert list(sites_1.filter(like="ImageQuality_PowerLogLogSlope_").columns) == [
        f"ImageQuality_PowerLogLogSlope_{c}" for c in CHANNELS
    ]


def test_gathering_npy_and_npz_keeps_order_and_content(tmp_path):
    parts = [
        np.arange(k * 24, (k + n) * 24, dtype=np.float16).reshape(n, 2, 3, 4)
        for k, n in ((0, 3), (3, 0), (3, 5))
    ]
    paths = []
    for i, part in enumerate(parts):
        np.save(tmp_path / f"p{i}.npy", part)
        paths.append(tmp_path / f"p{i}.npy")
    assert gather_npy(paths, tmp_path / "all.npy", rows_per_copy=2) == (8, 2, 3, 4)
    np.testing.assert_array_equal(np.load(tmp_path / "all.npy"), np.concatenate(parts))
    for i in range(2):
        with NpzWriter(tmp_path / f"m{i}.npz") as writer:
            writer.add(f"A0{i}_1_nuclei", np.full((4, 4), i, np.uint16))
    assert gather_npz([tmp_path / "m0.npz", tmp_path / "m1.npz"], tmp_path / "m.npz") == 2
    with np.load(tmp_path / "m.npz") as merged:
        assert merged["A01_1_nuclei"].max() == 1 and merged["A00_1_nuclei"].dtype == np.uint16
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_a_failed_writer_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), NpzWriter(tmp_path / "m.npz") as writer:
        writer.add("a", np.zeros(3))
        raise RuntimeError("killed half-way")
    assert not list(tmp_path.iterdir())


def test_a_plate_is_logged_once_whole(caplog):
    """The plate's summary and cellpose's unpaired objects, logged by whichever job holds the
    whole plate (its only job, or the gather of its shards)."""
    sites = pd.DataFrame(
        {"Count_Cells": [2, 0, 1], "Count_UnpairedNuclei": [1, 0, 2], "Count_UnpairedCells": 0}
    )
    cells = pd.DataFrame({"Cells_AreaShape_Area": [300.0] * 3, "Nuclei_AreaShape_Area": 60.0})
    with caplog.at_level("INFO", logger="debatch"):
        check_plate(cells, sites, "P9", logging.getLogger("debatch"))
    assert caplog.messages == [
        "plate P9: 3 sites, 3 cells; cells per site min 0, median 1, max 2",
        "cellpose objects left out for want of a partner: 3 nuclei, 0 cells",
    ]
    with pytest.raises(ValueError, match="plate P9: no cells found on any of its 3 sites"):
        check_plate(cells.iloc[:0], sites, "P9", logging.getLogger("debatch"))


def test_features_shards_are_the_cells_table_in_order(plate, tmp_path, caplog):
    """The features of 3 shards, gathered, equal 1 shard's: one row per row of the cells
    table (its Metadata_ columns first), and each site's rows are measure_site's on its masks."""
    manifest, illum = plate
    (tmp_path / "seg").mkdir()
    cells, _, masks = run_shards(manifest, illum, 1, tmp_path / "seg")
    channels, features = list(CHANNELS), {"measurements": ["areashape", "intensity", "correlation"]}
    paths = [tmp_path / f"features{shard}.parquet" for shard in range(3)]
    with caplog.at_level("INFO"):
        for shard, path in enumerate(paths):
            measure_shard(
                cells, manifest, 3, shard, channels, illum, tmp_path / "seg" / "masks.npz", path,
                features,
            )  # fmt: skip
    shape = gather_features(paths, cells, tmp_path / "gathered.parquet")
    gathered = pd.read_parquet(tmp_path / "gathered.parquet")
    one_path = tmp_path / "one.parquet"
    measure_shard(
        cells, manifest, 1, 0, channels, illum, tmp_path / "seg" / "masks.npz", one_path,
        features, threads=2,
    )  # fmt: skip
    pd.testing.assert_frame_equal(gathered, pd.read_parquet(one_path))
    schema = pq.read_schema(one_path)  # float columns required, NaN a value
    assert pq.read_schema(tmp_path / "gathered.parquet").equals(schema, check_metadata=True)
    assert sum(not field.nullable for field in schema) == len(feature_names(channels, features))
    metadata = [c for c in cells if c.startswith("Metadata_")]
    pd.testing.assert_frame_equal(gathered[metadata], cells[metadata])
    assert list(gathered.columns[len(metadata) :]) == feature_names(channels, features)
    assert (
        shape
        == gathered.shape
        == (len(cells), len(metadata) + len(feature_names(channels, features)))
    )
    row = manifest.sort_values(["Metadata_Well", "Metadata_Site"]).iloc[0]
    name = f"{row['Metadata_Well']}_{row['Metadata_Site']}"
    raw = read_raw_site(row, channels)
    site = measure_site(
        masks[f"{name}_nuclei"], masks[f"{name}_cells"], site_images(raw, illum), features
    )
    first = cells[
        (cells["Metadata_Well"] == row["Metadata_Well"])
        & (cells["Metadata_Site"] == row["Metadata_Site"])
    ]
    np.testing.assert_array_equal(
        gathered.loc[first.index, site.columns].to_numpy(),
        site.iloc[first["Metadata_ObjectNumber"] - 1].to_numpy(),
    )
    assert "CPU seconds per module" in caplog.text and "features" in caplog.text
    with pytest.raises(ValueError, match="not the cells table's"):
        gather_features(paths[:2], cells, tmp_path / "two.parquet")
    assert not (tmp_path / "two.parquet").exists()


def test_cells_no_bigger_than_their_nuclei_are_warned_about():
    cells = pd.DataFrame(
        {"Cells_AreaShape_Area": [50, 52, 300], "Nuclei_AreaShape_Area": [50, 50, 60]}
    )
    assert "median area ratio 1.04" in small_cells_warning(cells, "P1")
    assert small_cells_warning(cells.assign(Cells_AreaShape_Area=[250, 260, 300]), "P1") is None


def test_gathering_a_plate_imports_no_segmentation_or_measuring_code():
    """With several shards the gather jobs run once per plate: their start-up is the plate's
    fixed cost, so they must not import what only segmenting and measuring need."""
    heavy = ["numba", "centrosome", "cp_measure", "skimage", "debatch.illum.estimate"]
    code = (
        "import sys, debatch.segment.gather, debatch.features.gather, debatch.core.images; "
        f"print([name for name in {heavy!r} if name in sys.modules])"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert imported == "[]"


def test_a_features_file_takes_its_metadata_types_from_the_values(tmp_path):
    """pandas 2 reads text as ``object``, whose empty column Arrow cannot type: the schema
    comes from the cells' values, and a shard of other columns is refused by name."""
    from debatch.core.io import write_parquet
    from debatch.features.plate import features_schema

    cells = pd.DataFrame(
        {"Metadata_Well": np.array(["A01", "A02"], object), "Metadata_Site": [1, 1]}
    ).assign(Metadata_ObjectNumber=[1, 1])
    schema = features_schema(cells, ["Cells_AreaShape_Area"])
    assert pa.types.is_large_string(schema.field("Metadata_Well").type) or pa.types.is_string(
        schema.field("Metadata_Well").type
    )
    assert schema.field("Cells_AreaShape_Area").type == pa.float32()
    first, other = tmp_path / "shard0.parquet", tmp_path / "shard1.parquet"
    write_parquet(cells.head(1).assign(Cells_AreaShape_Area=np.float32(1)), first)
    write_parquet(cells.tail(1).assign(Cells_AreaShape_Perimeter=np.float32(1)), other)
    with pytest.raises(ValueError, match=f"^{other}: not the columns of {first}"):
        gather_features([first, other], cells, tmp_path / "plate.parquet")
    assert not (tmp_path / "plate.parquet").exists()
