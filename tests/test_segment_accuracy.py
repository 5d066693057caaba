"""Cell outlines against references: CellProfiler's objects on real fields, the generator's
ground truth on demo plates (normal and confluent). Settings come from config/, as the
pipeline and benchmarks/segmentation_accuracy.py read them."""

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from centrosome.cpmorphology import fill_labeled_holes
from centrosome.propagate import propagate as centrosome_propagate
from scipy import ndimage

from debatch.core.images import cellprofiler_scale, read_site
from debatch.demo.plate import demo_manifest
from debatch.illum.estimate import compute_plate_illum
from debatch.segment.grow import propagate
from debatch.segment.holes import fill_background_holes
from debatch.segment.propagate import cell_foreground, segment_cells, segment_nuclei, segment_site
from debatch.segment.score import (
    drop_border_objects,
    score_against_labels,
    score_site,
    summarise,
)
from debatch.settings import Channels
from debatch.validate.cellprofiler import objects_from_outlines

from conftest import REPO

CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
ATLAS = yaml.safe_load((REPO / "config" / "atlas.yaml").read_text())
DNA_AGP = Channels(("DNA", "AGP"), "DNA", "AGP")
SMALL_PLATE = {"rows": 2, "cols": 6, "n_treatments": 4}  # 12 wells: seconds to make


@pytest.fixture(scope="module")
def atlas(request):
    folder = REPO.parent / "shared" / "data" / "real" / "atlas_BR00143976"
    if not folder.is_dir():
        pytest.skip(f"real images not found at {folder}")
    images = {
        name: tifffile.imread(folder / "images" / f"r03c03f03p01-ch{number}sk1fk1fl1.tiff")
        for name, number in ATLAS["channels"].items()
    }
    outlines = folder / "outlines"
    nuclei = objects_from_outlines(outlines / "NucleiOutlines_BR00143976_C03_3.tiff")
    cells = objects_from_outlines(outlines / "CellsOutlines_BR00143976_C03_3.tiff", 500)
    return images, nuclei, cells


def test_propagation_is_centrosomes(atlas):
    """Our compiled propagation gives CellProfiler's (centrosome's) labels pixel for pixel on
    the real 1080 px field, whatever the regularisation."""
    images, _, _ = atlas
    dna, agp = (images[c] * cellprofiler_scale(images[c].dtype) for c in ("DNA", "AGP"))
    nuclei = segment_nuclei(dna, {"nucleus_diameter": 30.0})
    mask = cell_foreground(agp, nuclei) | (nuclei > 0)
    for regularisation in (0.0, 0.05, 1.0):
        theirs, _ = centrosome_propagate(agp, nuclei, mask, regularisation)
        np.testing.assert_array_equal(propagate(agp, nuclei, mask, regularisation), theirs)


def test_atlas_objects_agree_with_cellprofiler_at_default_settings(atlas):
    """A new user's set-up of the atlas field (config/atlas.yaml: channels, nucleus_diameter and
    crop size, nothing else) on the default config: nuclei AP@0.5 >= 0.9 with the median area
    within 5 % of CellProfiler's, cells AP@0.5 >= 0.85, against the objects CellProfiler drew.
    (Otsu, the default before issue 24, drew these nuclei far too small.)"""
    images, reference_nuclei, reference_cells = atlas
    assert ATLAS["segment"] == {"propagate": {"nucleus_diameter": 30.0}}
    channels = Channels(tuple(images), ATLAS["nuclei_channel"], ATLAS["cell_channel"])
    settings = {**CONFIG["segment"]["propagate"], **ATLAS["segment"]["propagate"]}
    floats = {name: image.astype(np.float32) for name, image in images.items()}
    nuclei, cells = segment_site(floats, channels, settings, cellprofiler_scale(np.uint16))
    nuclei_score = score_against_labels(reference_nuclei, nuclei)
    cells_score = score_against_labels(reference_cells, cells)
    assert nuclei_score["AP@0.5"] >= 0.9 and abs(nuclei_score["area_ratio"] - 1) <= 0.05
    assert cells_score["AP@0.5"] >= 0.85, cells_score


def test_nf1_nucleus_counts_at_default_settings(real_data):
    """NF1 fields (20x, nuclei ~50 px) at default settings with nucleus_diameter 50: every
    field's nucleus count within 10 % of CellProfiler's (border nuclei, which it dropped, left
    out of ours; touching nuclei it merged count once on its side)."""
    folder = real_data / "nf1_plate2"
    for path in sorted((folder / "Plate_2_images").glob("*_01_1_*_DAPI_001.tif")):
        reference = tifffile.imread(folder / "Plate_2_masks" / f"{path.stem}_MaskNuclei.tiff")
        theirs = ndimage.label(reference > 0, np.ones((3, 3)))[1]
        settings = {**CONFIG["segment"]["propagate"], "nucleus_diameter": 50.0}
        ours = (
            len(np.unique(drop_border_objects(segment_nuclei(tifffile.imread(path), settings)))) - 1
        )
        assert abs(ours / theirs - 1) <= 0.1, (path.name, ours, theirs)


def demo_scores(tmp_path, params: dict, settings: dict) -> dict:
    """Pooled scores of segment_site on a generated demo plate against its true masks."""
    manifest = demo_manifest(tmp_path / "plate", "plate", "batch1", params)
    illum = compute_plate_illum(manifest, ["DNA", "AGP"], CONFIG["illum"])
    truth = np.load(tmp_path / "plate" / "truth" / "masks.npz")
    rows = {"nuclei": [], "cells": []}
    for row in manifest.to_dict("records"):
        site = read_site(row, ["DNA", "AGP"], illum)
        nuclei, cells = segment_site(site, DNA_AGP, settings, 1 / 65535)
        key = f"{row['Metadata_Well']}_{row['Metadata_Site']}"
        rows["nuclei"].append(score_site(truth[f"{key}_nuclei"], nuclei))
        rows["cells"].append(score_site(truth[f"{key}_cells"], cells))
    return {name: summarise(pd.DataFrame(scores)) for name, scores in rows.items()}


@pytest.mark.slow
def test_demo_cells_follow_their_outlines(tmp_path):
    """The demo's own settings on a plate of another seed than the one they were chosen on:
    cells AP@0.75 >= 0.75 (the flooding watershed they replaced reached ~0.3; the benchmark's
    plates reach the 0.8 goal, this harder one just misses it)."""
    params = {**CONFIG["demo"]["params"], **SMALL_PLATE, "seed": 7}
    scores = demo_scores(tmp_path, params, CONFIG["segment"]["propagate"])
    assert scores["nuclei"]["AP@0.5"] >= 0.95
    assert scores["cells"]["AP@0.75"] >= 0.75, scores["cells"]


@pytest.mark.slow
def test_confluent_cells_are_separated_at_their_membranes(tmp_path):
    """A confluent monolayer (cells fill the space between nuclei, membranes the only cue):
    with cell_level_fraction, cell AP@0.5 >= 0.8; without it, Otsu cuts into the cytoplasm."""
    params = {**CONFIG["demo"]["params"], **SMALL_PLATE, "confluence": 1.0, "cells_per_site": 60}
    settings = CONFIG["segment"]["propagate"]
    confluent = demo_scores(tmp_path / "a", params, {**settings, "cell_level_fraction": 0.5})
    assert confluent["cells"]["AP@0.5"] >= 0.8, confluent["cells"]
    assert demo_scores(tmp_path / "b", params, settings)["cells"]["AP@0.5"] < 0.5


def test_propagation_is_centrosomes_on_a_mask_of_many_pieces():
    """Each connected piece of the mask grows on its own heap: the same labels as centrosome's
    one heap, with pieces holding several seeds, one, or none (left 0) and seeds off the mask."""
    rng = np.random.default_rng(5)
    image = ndimage.gaussian_filter(rng.random((120, 150)), 1.5)  # no exactly tied distances
    mask = ndimage.gaussian_filter(rng.random((120, 150)), 3) > 0.5
    seeds = np.zeros((120, 150), np.int32)
    for label, (y, x) in enumerate(rng.integers(0, 120, (40, 2)), start=1):
        seeds[y : y + 2, x : x + 3] = label
    pieces, n_pieces = ndimage.label(mask, np.ones((3, 3), bool))
    seeded = np.unique(pieces[(seeds > 0) & mask])
    assert n_pieces > 10 and 1 < len(seeded[seeded > 0]) < n_pieces
    assert ((seeds > 0) & ~mask).any()
    for regularisation in (0.0, 0.05, 1.0):
        theirs, _ = centrosome_propagate(image, seeds, mask, regularisation)
        ours = propagate(image, seeds, mask, regularisation)
        np.testing.assert_array_equal(ours, theirs)
        assert not ours[np.isin(pieces, seeded, invert=True) & (seeds == 0)].any()


def test_propagation_is_centrosomes_on_ties_and_flat_regions():
    """Flat plateaus, noise and touching seeds: the same labels as centrosome's propagate at
    regularisations > 0 (at exactly 0 a plateau's distances are all equal, and which seed takes
    a tied pixel is the heap's choice in either code; debatch.segment.grow says when else)."""
    rng = np.random.default_rng(4)
    image = np.round(rng.random((60, 70)) * 4) / 4  # few levels: many equal distances
    image[20:40, 10:60] = 0.5
    seeds = np.zeros((60, 70), np.int32)
    for label, (y, x) in enumerate(rng.integers(0, 60, (12, 2)), start=1):
        seeds[y, x : x + 2] = label
    mask = rng.random((60, 70)) > 0.15
    for regularisation in (0.01, 0.05, 2.0):
        theirs, _ = centrosome_propagate(image, seeds, mask, regularisation)
        np.testing.assert_array_equal(propagate(image, seeds, mask, regularisation), theirs)


def test_a_raw_image_without_its_scale_is_refused():
    nuclei = np.zeros((32, 32), np.int32)
    nuclei[14:18, 14:18] = 1
    with pytest.raises(ValueError, match="pass the scale of its pixel type"):
        segment_cells(nuclei, np.full((32, 32), 5000.0), {"nucleus_diameter": 4.0}, 1.0)


def test_a_cell_image_with_nan_is_refused():
    """NaN has no order, so no seed could be said to reach a NaN pixel first."""
    nuclei = np.zeros((32, 32), np.int32)
    nuclei[14:18, 14:18] = 1
    image = np.full((32, 32), 0.5)
    image[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        segment_cells(nuclei, image, {"nucleus_diameter": 4.0}, 1.0)


def test_fill_holes_fills_a_cells_dark_pocket():
    """A dark vacuole inside one cell is part of it with fill_holes, a hole without."""
    yy, xx = np.mgrid[0:64, 0:64]
    nuclei = (((yy - 32) ** 2 + (xx - 32) ** 2) <= 25).astype(np.int32)
    image = np.where(((yy - 32) ** 2 + (xx - 32) ** 2) <= 400, 0.5, 0.05)
    image[((yy - 20) ** 2 + (xx - 32) ** 2) <= 9] = 0.05
    filled = segment_cells(nuclei, image, {"nucleus_diameter": 10.0}, 1.0)
    holed = segment_cells(nuclei, image, {"nucleus_diameter": 10.0, "fill_holes": False}, 1.0)
    assert filled[20, 32] == 1 and holed[20, 32] == 0 and holed[32, 45] == 1


def test_a_cell_ringed_by_another_keeps_its_nucleus():
    """Filling holes must not swallow a small cell enclosed by a large one: each nucleus stays
    its cell's (the pairing every later stage relies on)."""
    yy, xx = np.mgrid[0:80, 0:80]
    r = np.hypot(yy - 40, xx - 40)
    nuclei = np.zeros((80, 80), np.int32)
    nuclei[(r <= 3)] = 2  # the inner cell's nucleus, at the centre of a ring-shaped cell
    nuclei[(np.hypot(yy - 40, xx - 62) <= 4)] = 1
    image = np.where(r <= 26, 0.5, 0.02)
    image[(r > 5) & (r < 7)] = 0.02  # a dark gap between the inner cell and the ring
    cells = segment_cells(nuclei, image, {"nucleus_diameter": 8.0, "max_cell_distance": None}, 1.0)
    np.testing.assert_array_equal(cells[nuclei > 0], nuclei[nuclei > 0])
    assert set(np.unique(cells)) == {0, 1, 2}
    assert (cells == 2).sum() > 2 * (nuclei == 2).sum()  # the inner cell keeps its cytoplasm


def _label_images(rng, n):
    """Label images of every shape hole filling meets: blobs, Voronoi cells with gaps, rings
    with objects inside them, and noise, at sizes from a few pixels."""
    for case in range(n):
        shape = tuple(rng.integers(5, 60, 2))
        yy, xx = np.indices(shape)
        if case % 4 == 0:
            labels, _ = ndimage.label(ndimage.binary_opening(rng.random(shape) < 0.6))
        elif case % 4 == 1:
            points = rng.integers(0, min(shape), (rng.integers(1, 12), 2))
            squared = (yy[..., None] - points[:, 0]) ** 2 + (xx[..., None] - points[:, 1]) ** 2
            labels = squared.argmin(-1) + 1
            labels[rng.random(shape) < rng.uniform(0, 0.4)] = 0
        elif case % 4 == 2:
            labels = np.zeros(shape, int)
            for label in range(1, rng.integers(2, 6)):
                radius = np.hypot(yy - rng.integers(0, shape[0]), xx - rng.integers(0, shape[1]))
                outer = rng.integers(2, 15)
                labels[(radius < outer) & (radius >= outer - rng.integers(1, 4))] = label
                labels[radius < rng.integers(0, outer)] = label + 10
        else:
            labels = rng.integers(0, 4, shape)
        yield labels.astype(np.int32)


def test_hole_filling_is_centrosomes_on_the_background():
    """fill_background_holes fills exactly the background pixels that CellProfiler's
    fill_labeled_holes fills, with the same cell, and leaves every cell as it is (also one
    that centrosome would swallow into the cell ringing it)."""
    rng = np.random.default_rng(11)
    filled_some = 0
    for labels in _label_images(rng, 300):
        theirs = np.where(labels > 0, labels, fill_labeled_holes(labels))
        ours = fill_background_holes(labels)
        np.testing.assert_array_equal(ours, theirs)
        filled_some += not np.array_equal(ours, labels)
    assert filled_some > 30  # the cases hold holes, not only open background
    for labels in (np.zeros((8, 9), np.int32), np.ones((8, 9), np.int32)):
        np.testing.assert_array_equal(fill_background_holes(labels), labels)
