"""A synthetic screen in RxRx1's exact layout, rendered by the demo's renderer.

    python -m debatch.demo.rxrx1 OUT [--seed N] [--params config/rxrx1_screen.yaml] [--jobs N]

RxRx1 (Recursion) is siRNA knock-downs in several cell types, each cell type imaged in numbered
experiments (the batches: ``HEPG2-01``, ...), 6 channels as 8-bit PNG, 2 sites per well. This
writes that layout under OUT:

- ``images/{dataset}/{experiment}/Plate{p}/{well}_s{site}_w{channel}.png`` (w1 Hoechst/DNA,
  w2 ConA/ER, w3 phalloidin/actin = the demo's AGP, w4 SYTO14/RNA, w5 MitoTracker, w6 WGA: the
  renderer's sixth stain);
- ``metadata.csv``, RxRx1's columns exactly (site_id, well_id, cell_type, dataset, experiment,
  plate, well, site, well_type, sirna, sirna_id), so ``python -m debatch.ingest.rxrx1`` converts
  it as it converts RxRx1's own;
- ``experiments.tsv``: each experiment's cell type, dataset and WILDS split (the last
  ``test_experiments`` of a cell type are dataset ``test``; the ``validation_experiments``
  before them are WILDS' validation set ``val``, dataset ``train`` as in RxRx1);
- ``truth/``: ``treatments.tsv`` (treatment, active, the cell-type mean of each phenotype knob's
  multiplier: what debatch.evaluate.truth reads), ``effects.tsv`` (the multipliers per siRNA and
  cell type, the cell type's own base included), ``cell_types.tsv`` (each cell type's base knobs
  and density) and ``batch_effects.json`` (each experiment's technical effects).

The biology (``screen_design``): each active siRNA shifts ``knobs_per_sirna`` of the demo's
phenotype knobs (debatch.demo.design.KNOBS) by ``effect_size`` x U(0.5, 1.5) in log space, so
effects are small and share knobs; ``close_pairs`` siRNAs copy another's shift up to a quarter
of its size (hard to tell apart); each cell type scales every shift by its own factor
max(0, 1 + ``cell_type_dependence`` x N(0, 1)) and has its own base knobs and cell density
(``cell_type_spread``); positive controls shift two knobs by ``poscon_effect``. Each experiment's
technical effects are the demo's (debatch.demo.batches, ``batch``), as strong as the demo's.
Every draw comes from ``seed``; a site's from (seed, experiment, plate, well, site), so the
screen is the same whatever ``--jobs``. Settings: ``settings.RXRX1_SCREEN``, each explained in
config/rxrx1_screen.yaml.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from debatch.core.io import write_json
from debatch.core.logs import setup_logging
from debatch.core.wells import well_name
from debatch.demo.batches import batch_effects, vignetting_field
from debatch.demo.design import CHANNELS, GOLGI, KNOBS
from debatch.demo.plate import _replace_dir
from debatch.demo.render import render_site
from debatch.settings import DEMO, RXRX1_SCREEN

log = logging.getLogger(__name__)

# RxRx1's channel w{k} <- the renderer's stain
RXRX1_CHANNELS = {1: "DNA", 2: "ER", 3: "AGP", 4: "RNA", 5: "Mito", 6: GOLGI}
RENDERED = (*CHANNELS, GOLGI)
METADATA_COLUMNS = (
    "site_id",
    "well_id",
    "cell_type",
    "dataset",
    "experiment",
    "plate",
    "well",
    "site",
    "well_type",
    "sirna",
    "sirna_id",
)
NEGCON_SIRNA, NEGCON_ID, POSCON_FIRST_ID = "EMPTY", 1138, 1108  # RxRx1's control ids
# RxRx1's wells: rows B..O, columns 02..23 of a 384-well plate
INNER_WELLS = [well_name(row, col) for row in range(1, 15) for col in range(1, 23)]


def _rng(screen: dict, *keys) -> np.random.Generator:
    return np.random.default_rng([screen["seed"], *(zlib.crc32(str(k).encode()) for k in keys)])


def experiments(params: dict) -> pd.DataFrame:
    """experiment, cell_type, dataset (train | test), split (train | val | test), in order."""
    screen = RXRX1_SCREEN.merge(params)
    n, test = screen["experiments"], screen["test_experiments"]
    val = screen["validation_experiments"]
    rows = []
    for cell_type in screen["cell_types"]:
        for i in range(1, n + 1):
            split = "test" if i > n - test else "val" if i > n - test - val else "train"
            dataset = "test" if split == "test" else "train"
            rows.append([f"{cell_type}-{i:02d}", cell_type, dataset, split])
    return pd.DataFrame(rows, columns=["experiment", "cell_type", "dataset", "split"])


def sirnas(params: dict) -> pd.DataFrame:
    """One row per siRNA (treatments, positive controls, EMPTY last): sirna, sirna_id,
    well_type, active, close_to (the siRNA it nearly copies, or ''), then each knob's shared
    log shift (``log_{knob}``)."""
    screen = RXRX1_SCREEN.merge(params)
    rng = _rng(screen, "sirnas")
    n, size = screen["sirnas"], screen["effect_size"]
    names = [f"s{i:05d}" for i in np.sort(rng.choice(np.arange(10000, 100000), n, replace=False))]
    order = rng.permutation(n)
    inactive = set(order[: screen["inactive"]])
    close = list(order[screen["inactive"] : screen["inactive"] + screen["close_pairs"]])
    shifts = np.zeros((n, len(KNOBS)))
    for i in range(n):
        knobs = rng.choice(len(KNOBS), screen["knobs_per_sirna"], replace=False)
        signs = rng.choice([-1.0, 1.0], len(knobs))
        shifts[i, knobs] = signs * size * rng.uniform(0.5, 1.5, len(knobs))
    partner = {}
    others = [i for i in range(n) if i not in inactive and i not in close]
    for i in close:  # nearly a copy of another active siRNA
        j = others[rng.integers(len(others))]
        jitter = rng.normal(0, 0.25 * size, len(KNOBS)) * (shifts[j] != 0)
        shifts[i], partner[i] = shifts[j] + jitter, names[j]
    shifts[sorted(inactive)] = 0.0
    rows = [
        [names[i], i, "treatment", i not in inactive, partner.get(i, ""), *shifts[i]]
        for i in range(n)
    ]
    for k in range(screen["positive_controls"]):
        shift = np.zeros(len(KNOBS))
        shift[rng.choice(len(KNOBS), 2, replace=False)] = rng.choice([-1.0, 1.0], 2)
        rows.append(
            [f"p{k + 1:02d}", POSCON_FIRST_ID + k, "positive_control", True, ""]
            + list(shift * screen["poscon_effect"])
        )
    rows.append([NEGCON_SIRNA, NEGCON_ID, "negative_control", False, "", *np.zeros(len(KNOBS))])
    columns = ["sirna", "sirna_id", "well_type", "active", "close_to"]
    return pd.DataFrame(rows, columns=columns + [f"log_{k}" for k in KNOBS])


def cell_types(params: dict) -> pd.DataFrame:
    """Each cell type's base knob multipliers and cell-density multiplier, from the seed."""
    screen = RXRX1_SCREEN.merge(params)
    rows = []
    for cell_type in screen["cell_types"]:
        z = _rng(screen, "cell type", cell_type).standard_normal(len(KNOBS) + 1)
        base = np.exp(screen["cell_type_spread"] * z)
        rows.append([cell_type, *base])
    return pd.DataFrame(rows, columns=["cell_type", *KNOBS, "density"])


def effects(params: dict) -> pd.DataFrame:
    """Knob multipliers per (sirna, cell_type): the cell type's base times the siRNA's shift,
    scaled per cell type by max(0, 1 + cell_type_dependence x N(0, 1)) in log space."""
    screen = RXRX1_SCREEN.merge(params)
    table, bases = sirnas(screen), cell_types(screen).set_index("cell_type")
    shared = table[[f"log_{k}" for k in KNOBS]].to_numpy()
    rows = []
    for cell_type in screen["cell_types"]:
        z = _rng(screen, "dependence", cell_type).standard_normal(shared.shape)
        scale = np.maximum(0.0, 1 + screen["cell_type_dependence"] * z)
        base = np.log(bases.loc[cell_type, list(KNOBS)].to_numpy(float))
        multipliers = np.exp(base + shared * scale)
        for name, values in zip(table["sirna"], multipliers):
            rows.append([name, cell_type, *values])
    return pd.DataFrame(rows, columns=["sirna", "cell_type", *KNOBS])


def plate_layout(screen: dict, experiment: str, plate: int, table: pd.DataFrame) -> pd.DataFrame:
    """well, sirna of one plate: its share of the siRNAs (dealt over ``plates`` the same way in
    every experiment), the positive and negative controls, shuffled over RxRx1's inner wells
    per experiment and plate, in well order."""
    treatments = table[table["well_type"] == "treatment"]["sirna"].tolist()
    share = treatments[plate - 1 :: screen["plates"]] * screen["replicates"]
    poscon = table[table["well_type"] == "positive_control"]["sirna"].tolist()
    content = share + poscon * screen["poscon_wells"] + [NEGCON_SIRNA] * screen["negcon_wells"]
    wells = _rng(screen, "layout", experiment, plate).permutation(INNER_WELLS)[: len(content)]
    return pd.DataFrame({"well": wells, "sirna": content}).sort_values("well", ignore_index=True)


def metadata(params: dict) -> pd.DataFrame:
    """metadata.csv's rows (RxRx1's columns, one row per site), without rendering anything."""
    screen = RXRX1_SCREEN.merge(params)
    listed = sirnas(screen)
    table = listed.set_index("sirna")
    rows = []
    for e in experiments(screen).itertuples(index=False):
        for plate in range(1, screen["plates"] + 1):
            for well, sirna in plate_layout(screen, e.experiment, plate, listed).values:
                well_id = f"{e.experiment}_{plate}_{well}"
                for site in range(1, screen["sites"] + 1):
                    rows.append(
                        [f"{well_id}_{site}", well_id, e.cell_type, e.dataset, e.experiment]
                        + [plate, well, site, table.loc[sirna, "well_type"], sirna]
                        + [int(table.loc[sirna, "sirna_id"])]
                    )
    return pd.DataFrame(rows, columns=list(METADATA_COLUMNS))


def render_params(screen: dict, density: float) -> dict:
    """The demo renderer's parameters for one cell type's sites (separate cells)."""
    keep = ("seed", "image_size", "nucleus_radius", "cell_radius", "cell_heterogeneity", "batch")
    demo = DEMO.merge({k: screen[k] for k in keep})
    return {**demo, "cells_per_site": screen["cells_per_site"] * density}


def to_8_bit(image: np.ndarray, brightness: float) -> np.ndarray:
    """A 16-bit rendered plane on RxRx1's 8-bit scale: / 257, x brightness, rounded, clipped."""
    return np.clip(np.rint(image / 257.0 * brightness), 0, 255).astype(np.uint8)


def render_experiment(root, params: dict, experiment: str) -> dict:
    """Write one experiment's PNG sites under ``root/images``; returns its technical effects."""
    screen = RXRX1_SCREEN.merge(params)
    info = experiments(screen).set_index("experiment").loc[experiment]
    density = cell_types(screen).set_index("cell_type").loc[info["cell_type"], "density"]
    demo = render_params(screen, float(density))
    multipliers = effects(screen)
    multipliers = multipliers[multipliers["cell_type"] == info["cell_type"]].set_index("sirna")
    fx = batch_effects(experiment, {k: demo[k] for k in ("seed", "batch")}, RENDERED)
    vignette = vignetting_field(fx, screen["image_size"])
    table = sirnas(screen)
    for plate in range(1, screen["plates"] + 1):
        folder = Path(root) / "images" / info["dataset"] / experiment / f"Plate{plate}"
        folder.mkdir(parents=True, exist_ok=True)
        for well, sirna in plate_layout(screen, experiment, plate, table).values:
            effect = multipliers.loc[sirna, list(KNOBS)].to_numpy(float)
            for site in range(1, screen["sites"] + 1):
                rng = _rng(screen, experiment, plate, well, site)
                images = render_site(rng, demo, fx, effect, vignette, RENDERED)[0]
                for k, stain in RXRX1_CHANNELS.items():
                    pixels = to_8_bit(images[stain], screen["brightness"])
                    Image.fromarray(pixels).save(folder / f"{well}_s{site}_w{k}.png")
    log.info("rendered %s", experiment)
    return fx


def _write_tsv(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, float_format="%.6g")


def generate(out, params: dict | None = None, jobs: int = 1) -> pd.DataFrame:
    """Write the whole screen into ``out`` (module docstring), atomically: into a sibling
    ``{out}.tmp-*`` folder that replaces ``out`` when complete. Returns metadata.csv's rows."""
    screen = RXRX1_SCREEN.merge(params)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        names = experiments(screen)["experiment"].tolist()
        if jobs > 1:
            with ProcessPoolExecutor(jobs) as pool:
                n = len(names)
                fxs = list(pool.map(render_experiment, [tmp] * n, [screen] * n, names))
        else:
            fxs = [render_experiment(tmp, screen, name) for name in names]
        rows = metadata(screen)
        rows.to_csv(tmp / "metadata.csv", index=False)
        _write_tsv(experiments(screen), tmp / "experiments.tsv")
        _write_truth(tmp / "truth", screen, dict(zip(names, fxs)))
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("%d sites of %d experiments: %s", len(rows), len(names), out)
    return rows


def _write_truth(folder: Path, screen: dict, fxs: dict) -> None:
    """truth/: treatments.tsv (debatch.evaluate.truth's), effects.tsv, cell_types.tsv,
    batch_effects.json (module docstring)."""
    table, per_type = sirnas(screen), effects(screen)
    mean = per_type.groupby("sirna", sort=False)[list(KNOBS)].apply(
        lambda group: np.exp(np.log(group).mean())
    )
    bases = cell_types(screen)[list(KNOBS)].to_numpy(float)
    mean = mean / np.exp(np.log(bases).mean(axis=0))  # the shift alone, bases divided out
    treatments = table[["sirna", "active", "well_type", "close_to"]].rename(
        columns={"sirna": "treatment"}
    )
    treatments = treatments.join(mean.reindex(table["sirna"]).reset_index(drop=True))
    _write_tsv(treatments, folder / "treatments.tsv")
    _write_tsv(per_type, folder / "effects.tsv")
    _write_tsv(cell_types(screen), folder / "cell_types.tsv")
    write_json(fxs, folder / "batch_effects.json")


def main(argv: list[str] | None = None) -> None:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m debatch.demo.rxrx1",
        description="a synthetic screen in RxRx1's layout (images/, metadata.csv, truth/)",
    )
    parser.add_argument("out", help="the folder to write (replaced when complete)")
    parser.add_argument("--params", help="YAML of settings (config/rxrx1_screen.yaml's keys)")
    parser.add_argument("--seed", type=int, help="the master seed (over --params' seed)")
    parser.add_argument("--jobs", type=int, default=1, help="experiments rendered at once")
    args = parser.parse_args(argv)
    setup_logging(None)
    params = yaml.safe_load(Path(args.params).read_text()) if args.params else {}
    if args.seed is not None:
        params = {**(params or {}), "seed": args.seed}
    generate(args.out, params, args.jobs)


if __name__ == "__main__":
    main()
