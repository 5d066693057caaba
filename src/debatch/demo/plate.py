"""Writing demo plates: images in Opera/Phenix file naming, the platemap, the ground truth.

Images are five uint16 channels per site (``r01c01f01p01-ch1sk1fk1fl1.tiff``), so the demo
runs through the same manifest code as a real screen. The true masks, per-cell truth, which
sites are out of focus, treatment effects and batch effects are written under ``truth/``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from debatch.core.io import atomic_path, save_npz, write_json, write_parquet
from debatch.core.wells import well_position
from debatch.demo.batches import batch_effects, defocus, vignetting_field
from debatch.demo.design import CHANNELS, KNOBS, plate_layout, treatment_effects
from debatch.demo.render import render_site
from debatch.ingest.manifest import build_manifest, read_platemap
from debatch.settings import BATCH, DEMO, PLATE, PLATE_SHEET_COLUMNS, SITE, TREATMENT, WELL


def generate_plate(out_dir, plate: str, batch: str, params: dict) -> None:
    """Write one plate's images, platemap and truth into out_dir, atomically.

    Everything is written into a sibling ``{out_dir}.tmp-*`` folder that replaces out_dir
    only when complete, so a killed run never leaves a half plate. Each site's randomness
    comes from (seed, plate, well, site), so a plate is reproducible in any process.
    """
    demo = DEMO.merge(params)
    out_dir = Path(out_dir)
    layout = plate_layout(demo)
    truth_effects = treatment_effects(demo)
    effects = truth_effects.set_index("treatment")[list(KNOBS)]
    fx = batch_effects(batch, demo)
    vignette = vignetting_field(fx, demo["image_size"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        (tmp / "images").mkdir()
        masks, tables, sites = {}, [], []
        for well, treatment in zip(layout["well"], layout["treatment"]):
            row, col = (index + 1 for index in well_position(well))
            effect = effects.loc[treatment].to_numpy(float)
            for site in range(1, demo["sites"] + 1):
                rng = np.random.default_rng(
                    [demo["seed"], zlib.crc32(plate.encode()), zlib.crc32(well.encode()), site]
                )
                blurred = _defocused(demo, plate, well, site)
                site_fx = defocus(fx, demo["defocus"]) if blurred else fx
                images, nuclei, cells, table = render_site(rng, demo, site_fx, effect, vignette)
                sites.append({WELL: well, SITE: site, TREATMENT: treatment, "Defocused": blurred})
                for channel_id, channel in enumerate(CHANNELS, start=1):
                    name = f"r{row:02d}c{col:02d}f{site:02d}p01-ch{channel_id}sk1fk1fl1.tiff"
                    tifffile.imwrite(tmp / "images" / name, images[channel])
                masks[f"{well}_{site}_nuclei"] = nuclei
                masks[f"{well}_{site}_cells"] = cells
                table.insert(0, PLATE, plate)
                table.insert(1, BATCH, batch)
                table.insert(2, WELL, well)
                table.insert(3, SITE, site)
                table.insert(9, TREATMENT, treatment)
                tables.append(table)
        with atomic_path(tmp / "platemap.tsv") as path:
            layout.to_csv(path, sep="\t", index=False)
        save_npz(tmp / "truth" / "masks.npz", **masks)
        write_parquet(pd.concat(tables, ignore_index=True), tmp / "truth" / "cells.parquet")
        with atomic_path(tmp / "truth" / "sites.tsv") as path:
            pd.DataFrame(sites).to_csv(path, sep="\t", index=False)
        with atomic_path(tmp / "truth" / "treatments.tsv") as path:
            truth_effects.to_csv(path, sep="\t", index=False)
        write_json(fx, tmp / "truth" / "batch_effects.json")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def demo_manifest(folder, plate: str, batch: str, params: dict) -> pd.DataFrame:
    """Generate a demo plate into ``folder`` and return its manifest (the manifest stage's
    table, channels named as CHANNELS), for tests and benchmarks that need real files."""
    folder = Path(folder)
    generate_plate(folder, plate, batch, params)
    channels = {name: str(i) for i, name in enumerate(CHANNELS, start=1)}
    platemap = read_platemap(folder / "platemap.tsv")
    return build_manifest(plate, batch, folder / "images", "opera_phenix", platemap, channels)


def _defocused(demo: dict, plate: str, well: str, site: int) -> bool:
    """Whether a site is imaged out of focus: its own draw, so the other draws stay the same."""
    if not demo["blurred_sites"]:
        return False
    rng = np.random.default_rng(
        [demo["seed"], zlib.crc32(plate.encode()), zlib.crc32(well.encode()), site, 1]
    )
    return bool(rng.random() < demo["blurred_sites"])


def _replace_dir(new: Path, target: Path) -> None:
    """Move folder new onto target, removing a stale target with no gap in between."""
    if target.exists():
        stale = Path(tempfile.mkdtemp(prefix=f"{target.name}.stale-", dir=target.parent))
        os.replace(target, stale)  # a directory may replace an empty one
        os.replace(new, target)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.replace(new, target)


def write_plate_sheet(path, plates: list[tuple[str, str]], root) -> None:
    """Write the pipeline's plates.tsv for generated plates (plate, batch) under root."""
    sheet = pd.DataFrame(
        [
            {
                "plate": plate,
                "batch": batch,
                "images": f"{root}/{plate}/images",
                "pattern": "opera_phenix",
                "platemap": f"{root}/{plate}/platemap.tsv",
            }
            for plate, batch in plates
        ],
        columns=list(PLATE_SHEET_COLUMNS),
    )
    with atomic_path(path) as tmp:
        sheet.to_csv(tmp, sep="\t", index=False)
