"""debatch.embed: one float32 embedding row per crop, rebuilt from model.pt alone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from debatch.cnn.data import plate_channel_stats
from debatch.cnn.embed import embed_plate, embed_plates, load_model
from debatch.cnn.train import train_model
from debatch.settings import MODEL_CARD, TRAIN_METHODS

from builders import TINY_TRAIN, write_plates


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained for one epoch, and the plates it was trained on."""
    directory = tmp_path_factory.mktemp("embed")
    plates = write_plates(directory)
    params = {**TINY_TRAIN, "epochs": 1, "holdout_batches": ["B3"]}
    train_model(plates, directory / "run", params, channels=CHANNELS)
    return directory / "run" / "model.pt", plates


CHANNELS = ["DNA", "ER", "RNA", "AGP", "Mito"]


def test_model_card_says_what_the_model_needs_and_learnt_from(trained):
    """model.json beside model.pt (and the card inside it): channels in order, crop shape,
    input scaling, the plates and batches trained on (not the held-out one), where and with
    which code: what another run needs to use the model and to refuse misuse."""
    model_path, _ = trained
    card = json.loads(model_path.with_name(MODEL_CARD).read_text())
    assert card["channels"] == CHANNELS
    assert card["unit"] == "cell" and card["crop_shape"] == [5, 16, 16]
    assert card["input_scaling"] == "global" and len(card["norm_mean"]) == 5
    assert card["training_plates"] == ["P0", "P1"] and card["training_batches"] == ["B1", "B2"]
    assert card["holdout_batches"] == ["B3"] and card["epochs"] == 1
    assert card["trained_in"] == str(model_path.parent.resolve()) and card["code"]
    inside = torch.load(model_path, weights_only=True)["card"]
    assert inside == {k: v for k, v in card.items() if k != "epochs"}


def test_other_channels_are_refused_naming_both(trained):
    """Crops of the same shape but other channels (or order) would embed without complaint."""
    model_path, plates = trained
    swapped = [CHANNELS[1], CHANNELS[0], *CHANNELS[2:]]
    with pytest.raises(ValueError, match=r"trained on channels \['DNA', 'ER'.*are \['ER', 'DNA'"):
        next(embed_plates(model_path, plates[:1], channels=swapped))
    assert len(next(embed_plates(model_path, plates[:1], channels=CHANNELS))) == 80


def test_rows_columns_and_dtype(trained):
    """Rows align with crops; Metadata_* carried in order, measurements dropped; finite float32."""
    model_path, plates = trained
    npy, parquet = plates[0]
    table = pd.read_parquet(parquet)
    out = embed_plate(model_path, npy, parquet)
    metadata = [c for c in table.columns if c.startswith("Metadata_")]
    embedding = [f"emb_{i:03d}" for i in range(TINY_TRAIN["embedding_dim"])]
    assert list(out.columns) == metadata + embedding
    assert len(out) == len(np.load(npy, mmap_mode="r"))
    pd.testing.assert_frame_equal(out[metadata], table[metadata])
    values = out[embedding].to_numpy()
    assert (out[embedding].dtypes == np.float32).all() and np.isfinite(values).all()


def test_embedding_does_not_depend_on_batch_size(trained):
    """Eval mode (BN running stats): a crop's embedding must not depend on its batch mates."""
    model_path, plates = trained
    runs = [
        embed_plate(model_path, *plates[1], {"batch_size": bs}).filter(like="emb_").to_numpy()
        for bs in (1, 7, 512)
    ]
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-5)
    np.testing.assert_allclose(runs[0], runs[2], atol=1e-5)


def test_load_model_is_eval_and_embed_uses_training_normalisation(trained):
    """Embeddings equal forward_features of crops standardised with the stored channel stats."""
    model_path, plates = trained
    model, meta = load_model(model_path, device="cpu")
    assert not any(module.training for module in model.modules())
    mean = torch.tensor(meta["norm_mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["norm_std"]).view(1, -1, 1, 1)
    assert not torch.allclose(mean, torch.zeros_like(mean))
    crops = torch.from_numpy(np.load(plates[0][0])[:10].astype(np.float32))
    with torch.inference_mode():
        expected = model.forward_features((crops - mean) / std).numpy()
    out = embed_plate(model_path, *plates[0]).filter(like="emb_").to_numpy()[:10]
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_crop_shape_mismatch_is_an_error(trained, tmp_path):
    """Crops of another size than the training crops would give meaningless embeddings."""
    model_path, _ = trained
    npy, parquet = write_plates(tmp_path, size=8, batches=("B1",))[0]
    with pytest.raises(ValueError, match="trained on"):
        embed_plate(model_path, npy, parquet)


def as_sites(plates):
    """The plates' crops tables as tables of whole sites (crops.unit: site): no cell's object
    number, each row's site's cell count instead."""
    for _, parquet in plates:
        table = pd.read_parquet(parquet).drop(columns=["Metadata_ObjectNumber"])
        table.assign(Metadata_Site=range(1, len(table) + 1), Metadata_Cells=5).to_parquet(parquet)
    return plates


def test_a_site_model_trains_on_tiles_embeds_whole_sites_and_refuses_cells(trained, tmp_path):
    """Trained on whole sites (random 8 px tiles of the 16 px stored sites), the card says
    site and the input shape; it embeds one row per whole site, and neither kind of model
    embeds the other kind of crops."""
    cell_model, cell_plates = trained
    plates = as_sites(write_plates(tmp_path))
    params = {**TINY_TRAIN, "epochs": 1, "holdout_batches": ["B3"], "tile": 8}
    train_model(plates, tmp_path / "run", params, channels=CHANNELS)
    model = tmp_path / "run" / "model.pt"
    card = json.loads(model.with_name(MODEL_CARD).read_text())
    assert card["unit"] == "site" and card["crop_shape"] == [5, 16, 16]
    embedded = embed_plate(model, *plates[0])
    assert len(embedded) == 80 and embedded["Metadata_Cells"].eq(5).all()
    with pytest.raises(ValueError, match="holds crops of cells .* was trained on sites"):
        embed_plate(model, *cell_plates[0])
    with pytest.raises(ValueError, match="holds crops of sites .* was trained on cells"):
        embed_plate(cell_model, *plates[0])
    with pytest.raises(ValueError, match="train.tile 32 is larger than the stored crops"):
        train_model(plates, tmp_path / "big", {**params, "tile": 32}, channels=CHANNELS)


@pytest.fixture(scope="module")
def trained_methods(tmp_path_factory):
    """One tiny model per method (1 epoch), and the plates they were trained on."""
    directory = tmp_path_factory.mktemp("embed_methods")
    plates = write_plates(directory)
    for method in TRAIN_METHODS:
        train_model(plates, directory / method, {**TINY_TRAIN, "method": method, "epochs": 1})
    return directory, plates


@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_every_method_rebuilds_from_model_pt_and_embeds_deterministically(trained_methods, method):
    """load_model needs model.pt only (augmentation modules, margin heads); augmentations are
    off at embedding time, so repeated and differently batched runs agree."""
    directory, plates = trained_methods
    model, meta = load_model(directory / method / "model.pt", device="cpu")
    assert meta["params"]["method"] == method and not model.training
    runs = [
        embed_plate(directory / method / "model.pt", *plates[2], {"batch_size": bs})
        .filter(like="emb_")
        .to_numpy()
        for bs in (512, 512, 5)
    ]
    assert np.isfinite(runs[0]).all()
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_allclose(runs[0], runs[2], atol=1e-5)


def test_deepnoise_embeds_with_the_plates_own_statistics(trained_methods):
    """Per-plate scaling: a plate is standardised with its own crops' channel mean/std."""
    directory, plates = trained_methods
    model_path = directory / "deepnoise" / "model.pt"
    model, meta = load_model(model_path, device="cpu")
    assert meta["input_scaling"] == "plate" and meta["norm_mean"] is None
    for npy, parquet in plates:
        crops = np.load(npy)
        mean, std = (
            torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1)
            for v in plate_channel_stats(crops)
        )
        with torch.inference_mode():
            expected = model.forward_features(
                (torch.from_numpy(crops[:10].astype(np.float32)) - mean) / std
            ).numpy()
        out = embed_plate(model_path, npy, parquet).filter(like="emb_").to_numpy()[:10]
        np.testing.assert_allclose(out, expected, atol=1e-5)
