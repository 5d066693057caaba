"""Each rule's params: the slice of the config a job's results depend on, and nothing more, so
that changing a key reruns exactly the jobs it shapes (Snakemake reruns a job whose params
changed)."""

from __future__ import annotations

from debatch import settings


def stage_params(block: dict, drop=()) -> dict:
    """A rule's params: its config block, minus keys that only fan out jobs (train.methods)."""
    return {key: value for key, value in block.items() if key not in drop}


def segment_settings(segment: dict) -> dict:
    """The segment block without the settings of the method not in use (changing those must
    not rerun segmentation); the shard count lives in params.shards."""
    block = {k: v for k, v in segment.items() if k not in ("cellpose", "shards")}
    if block["method"] == "cellpose":
        block["cellpose"] = segment.get("cellpose", {})
    return block


def gpu_jobs(device: str) -> int:
    """The ``gpu`` resource of a job whose ``device`` setting is ``device``: 1 where it may run
    on a GPU (auto, cuda), which SLURM maps to --gpus=1 and the workstation profile's gpu=1
    turns into one such job at a time; 0 for cpu, so CPU jobs run side by side as the cores
    allow."""
    return int(device != "cpu")


def segment_gpu(segment: dict) -> int:
    """cellpose on a GPU node when one may be used; the classical methods never."""
    if segment["method"] != "cellpose":
        return 0
    return gpu_jobs(segment.get("cellpose", {}).get("device", "auto"))


def folds(train: dict, batches: list[str]) -> list[str | None]:
    """The batch each model of a method and seed holds out: every batch in turn with
    train.rotate_holdout (leave-one-batch-out), else one model (None) holding out
    train.holdout_batches."""
    return list(batches) if train.get("rotate_holdout") else [None]


def trained_sources(train: dict, batches: list[str]) -> list[str]:
    """Every source this run trains: one per method, seed and fold (``folds``)."""
    return [
        settings.source_name(method, seed, fold)
        for method in train["methods"]
        for seed in train.get("seeds", [0])
        for fold in folds(train, batches)
    ]


def train_params(train: dict, method: str, seed: int, fold: str | None = None) -> dict:
    """This method's settings: the shared train keys, its seed and only its own block (a
    preset's, e.g. train.abra, or its recipe of train.recipes), so tuning one method, or adding
    a method or a seed, never retrains the others; a rotated model (``fold``) holds out its
    batch alone. train.splits never reaches a job (``train`` holds the lists it resolved to:
    plates.sheet_splits)."""
    drop = (*settings.TRAIN_FAN_OUT, *settings.TRAIN_START_UP, *settings.TRAIN_METHODS)
    # the WILDS keys only when set, so the params of runs made before them stay the same
    drop += tuple(key for key in settings.TRAIN_WILDS if not train.get(key))
    shared = stage_params(train, drop=drop)
    if fold is not None:
        shared["holdout_batches"] = [fold]
    own = {}
    if method in settings.TRAIN_METHODS and train.get(method):
        own = {method: train[method]}
    elif method not in settings.TRAIN_METHODS:
        own = {"recipe": train["recipes"][method]}
    return {**shared, "method": method, "seed": seed, **own}


def holdout_batches(train: dict, source: str, batches=()) -> list[str]:
    """The batches a source's diagnostics score as held out: a rotated model's own batch; with
    train.rotate_holdout, every batch (``batches``) in turn for the sources not trained in the
    run (``rotates_holdout``); else train.holdout_batches (what this run's models never saw)."""
    fold = settings.source_fold(source)
    if fold is not None:
        return [fold]
    return list(batches) if rotates_holdout(train, source) else train.get("holdout_batches", [])


def rotates_holdout(train: dict, source: str) -> bool:
    """Whether a source's diagnostics hold out each batch in turn: a source with no fold of
    its own (CellProfiler, frozen, external) in a run whose models rotate the held-out batch,
    so that its matching score is measured as theirs is."""
    return bool(train.get("rotate_holdout")) and settings.source_fold(source) is None


def rotation_params(train: dict):
    """The diagnostics' extra param with train.rotate_holdout, a function of the source
    (``rotates_holdout``); none without it, so the params of other runs stay the same."""
    if not train.get("rotate_holdout"):
        return {}
    return {"rotate_holdout": lambda wildcards: rotates_holdout(train, wildcards.source)}


def validation_params(train: dict) -> dict:
    """The diagnostics' extra params under the WILDS protocol: the validation batches, whose
    wells the held-out scores leave out of the reference set (they selected the models); none
    without them, so the params of runs made before them stay the same."""
    batches = train.get("validation_batches", [])
    return {"validation_batches": list(batches)} if batches else {}


def plate_cells(source: str, plate: str, results: str, external=()) -> dict:
    """One plate's per-cell table of a source: a model's embeddings; for `cellprofiler`, the
    plate's features and its crops table naming the cells to profile (the cells every CNN
    embeds: those on sites that passed QC); for an external source (one of ``external``:
    checks.check_external), the plate's part of its table."""
    if source == settings.CELLPROFILER:
        return {
            "cells": f"{results}/features/{plate}.parquet",
            "crops": f"{results}/crops/{plate}.parquet",
        }
    if source in external:
        return {"cells": f"{results}/external/{source}/{plate}.parquet"}
    return {"cells": f"{results}/embeddings/{source}/{plate}.parquet"}


def source_cells(source: str, plates: list[str], results: str, external=()) -> dict:
    """The per-cell tables of a source, every plate's (plate_cells), as lists."""
    tables = [plate_cells(source, plate, results, external) for plate in plates]
    return {key: [table[key] for table in tables] for key in tables[0]}


def external_params(external: dict, source: str) -> dict:
    """An external source's block (settings.external_block) without its path: the files are
    the rule's input, so a changed table reruns the job as a changed path does."""
    block = settings.external_block(source).merge(external[source])
    return {key: value for key, value in block.items() if key != "path"}


def feature_kind(source: str, external: dict | None = None) -> str:
    """`cellprofiler` (CellProfiler-named features: all of feature selection) or `embedding`
    (its guards only): a trained model's are embeddings, an external source's what it says."""
    if source in (external or {}):
        return external_params(external, source)["features"]
    return settings.CELLPROFILER if source == settings.CELLPROFILER else "embedding"


def aggregation_params(profiles: dict, source: str, external: dict | None = None) -> dict:
    """The profiles keys that shape the plate-normalised wells (shared by every correction):
    all of feature selection for CellProfiler features, only its guards (drop_outliers and
    its cutoff) for embeddings, so tuning the rest never reruns a CNN's (``external``: the
    config's block, naming what each external source's features are)."""
    profiles = settings.PROFILES.merge(profiles)
    params = {
        key: profiles[key] for key in ("aggregate", "aggregate_columns", "normalise", "mad_epsilon")
    }
    selection = profiles["feature_select"]
    if feature_kind(source, external) != settings.CELLPROFILER:
        guards = [o for o in selection["operations"] if o in settings.GUARDS]
        selection = {"operations": guards, "outlier_cutoff": selection["outlier_cutoff"]}
    return {**params, "feature_select": selection}


def correction_params(profiles: dict, correction: str) -> dict:
    """Only this correction's keys (+ consensus), so tuning Harmony never reruns sphering."""
    return {
        key: value
        for key, value in profiles.items()
        if key == "consensus" or key.startswith(f"{correction}_")
    }


def cell_sources(sources: list[str], embedded: list[str], external: dict, crops: dict) -> list:
    """The sources whose per-row tables hold cells (outputs.anndata_cells writes theirs): not a
    model's embeddings with ``crops.unit: site`` (whole sites), nor an external table of wells."""
    sites = settings.CROPS.merge(crops)["unit"] == "site"
    return [
        s
        for s in sources
        if not (sites and s in embedded)
        and (s not in external or external_params(external, s)["level"] == "cells")
    ]
