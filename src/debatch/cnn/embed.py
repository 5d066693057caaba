"""Embed every crop (a cell's or a whole site's, crops.unit) of a plate with a trained model
(``model.pt`` written by debatch.cnn.train).

Inputs are scaled as in training: with the training crops' channel mean/std stored in
``model.pt``, or, for models trained with per-plate scaling (deepnoise, plate recipes), with
the mean/std of
the embedded plate's own crops (debatch.cnn.data.plate_channel_stats, no jitter). Training-time
augmentations (flips, DSU, MixStyle, ABRA, jitter) are all off: the model is in eval mode.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from debatch.cnn.data import plate_channel_stats, to_input
from debatch.cnn.models import CellResNet
from debatch.core.device import resolve_device
from debatch.crops.store import crop_unit, open_crops
from debatch.settings import EMBED, METADATA


def load_model(model_path, device="auto") -> tuple[nn.Module, dict]:
    """Rebuild the network from ``model.pt`` alone; returns (eval-mode model on device, metadata).

    Metadata keys: arch (CellResNet arguments), params (training settings), classes,
    input_scaling ("global" or "plate"), norm_mean, norm_std (global per-channel scaling; None
    for "plate"), crop_shape [C, S, S], epoch, card (debatch.cnn.checkpoint.model_card; absent
    in models saved before cards).
    """
    device = resolve_device(device, "embed.device")
    saved = torch.load(model_path, map_location="cpu", weights_only=True)
    model = CellResNet(**saved["arch"])
    model.load_state_dict(saved.pop("state_dict"))
    model = model.to(device, memory_format=model.memory_format).eval()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model, saved


def check_channels(meta: dict, model_path, channels) -> None:
    """A model embeds only crops of the channels it learnt, in the same order (its card says
    which; a model saved before cards existed is trusted)."""
    trained = meta.get("card", {}).get("channels")
    if channels is not None and trained is not None and list(channels) != trained:
        raise ValueError(
            f"{model_path} was trained on channels {trained} but this run's channels are "
            f"{list(channels)}: set channels: to the model's, in its order"
        )


def embed_plates(
    model_path,
    plates: list[tuple[str, str]],
    params: dict | None = None,
    num_threads: int = 1,
    channels=None,
):
    """Embeddings of each (crops .npy, crops .parquet) plate in turn (see ``embed_plate``),
    the model loaded once: one job per model, not per model and plate. ``channels``: the crops'
    channel names in order, checked against the model's card."""
    embed = EMBED.merge(params)
    model, meta = load_model(model_path, embed["device"])
    check_channels(meta, model_path, channels)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        for npy_path, parquet_path in plates:
            yield _embed(model, meta, model_path, npy_path, parquet_path, embed["batch_size"])
    finally:
        torch.set_num_threads(previous_threads)


def embed_plate(
    model_path, npy_path, parquet_path, params: dict | None = None, num_threads: int = 1
) -> pd.DataFrame:
    """One row per crop, in file order: the parquet's Metadata_* columns, then emb_000... float32.

    Streams the memmap in contiguous batches through ``forward_features`` in eval mode under
    ``torch.inference_mode()`` with the training input scaling (see the module docstring).
    Float32 also on GPU (no autocast), so embeddings do not depend on the device's
    reduced-precision kernels.
    """
    return next(embed_plates(model_path, [(npy_path, parquet_path)], params, num_threads))


def _embed(
    model: nn.Module, meta: dict, model_path, npy_path, parquet_path, batch_size: int
) -> pd.DataFrame:
    device = next(model.parameters()).device
    crops, table = open_crops(npy_path, parquet_path)
    trained_on = meta.get("card", {}).get("unit", "cell")  # models before units: cells
    if crop_unit(table) != trained_on:
        raise ValueError(
            f"{parquet_path} holds crops of {crop_unit(table)}s (crops.unit) but {model_path} "
            f"was trained on {trained_on}s"
        )
    if list(crops.shape[1:]) != meta["crop_shape"]:
        raise ValueError(
            f"{npy_path} has crops of shape {list(crops.shape[1:])} (channels, crops.size) but "
            f"{model_path} was trained on {meta['crop_shape']}"
        )
    stats = (
        (meta["norm_mean"], meta["norm_std"])
        if meta["input_scaling"] == "global"
        else plate_channel_stats(crops)
    )
    mean, std = (
        torch.tensor(np.asarray(v), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        for v in stats
    )
    out = np.empty((len(crops), meta["arch"]["embedding_dim"]), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(crops), batch_size):
            x = to_input(np.array(crops[start : start + batch_size]), mean, std, device)
            out[start : start + len(x)] = model.forward_features(x).float().cpu().numpy()
    metadata = table[[c for c in table.columns if c.startswith(METADATA)]]
    width = max(3, len(str(out.shape[1] - 1)))
    embedding = pd.DataFrame(out, columns=[f"emb_{i:0{width}d}" for i in range(out.shape[1])])
    return pd.concat([metadata.reset_index(drop=True), embedding], axis=1)
