"""Synthetic Cell Painting screen with known ground truth (the embedded offline demo).

Each plate shares one platemap of DMSO negative controls and compound treatments. A
treatment changes one or two phenotype "knobs" (nucleus size, a channel's brightness,
mitochondrial texture, cell shape) per cell with some cell-to-cell heterogeneity; three
treatments do nothing. Every batch (imaging day / instrument) adds its own technical
effects -- channel gains and offsets, vignetting, blur, background, noise, cell density --
deterministically from the batch name, so any process recomputes the same batch.

Images are five uint16 channels per site in Opera/Phenix file naming, rendered from label
images of touching cells (a size-weighted Voronoi partition of elliptical cells around
elliptical nuclei). The true masks, per-cell truth, treatment effects and batch effects are
written next to the images under ``truth/``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage
from skimage.measure import label as connected_components
from skimage.segmentation import find_boundaries

from debatch.io import atomic_path, save_npz, write_json, write_parquet

CHANNELS = ("DNA", "ER", "RNA", "AGP", "Mito")
KNOBS = ("nucleus_size", "dna_intensity", "er_intensity", "rna_intensity", "mito_texture",
         "agp_intensity", "cell_elongation", "cell_size")
NEGCON = "DMSO"

DEFAULTS: dict = {
    "seed": 0,                  # master seed: layout, treatment effects, batches and every site
    "rows": 4,                  # plate rows used (letters A..), at most 16
    "cols": 6,                  # plate columns used (1..), at most 24
    "sites": 2,                 # fields of view per well
    "image_size": 256,          # square image side in pixels
    "cells_per_site": 40,       # mean cell count per site before the batch density multiplier
    "nucleus_radius": 6.0,      # mean nucleus radius in pixels
    "cell_radius": 13.0,        # mean cell radius in pixels (before neighbours cut it)
    "n_treatments": 8,          # compounds cpd01.. (each in `replicates` wells); other wells DMSO
    "replicates": 2,            # wells per compound on every plate
    "n_inactive": 3,            # compounds with no effect at all
    "effect_size": 0.35,        # relative change of an affected knob (x 1.35 or x 0.65)
    "cell_heterogeneity": 0.3,  # per-cell SD of the effect, relative to its log size
    "batch": {                  # technical effect strengths per batch; all 0 = no batch effect
        "gain": 0.25,           # SD of the log per-channel gain
        "offset": 0.02,         # scale of the per-channel additive camera offset (full scale ~1)
        "vignetting": 0.3,      # mean amplitude of the radial illumination falloff
        "blur": 0.8,            # mean extra Gaussian blur sigma in pixels
        "background": 0.03,     # mean extra per-channel background (illuminated like the signal)
        "noise": 0.02,          # mean extra noise level
        "density": 0.2,         # SD of the log cell-density multiplier (denser = smaller cells)
    },
}

# Intrinsic image formation, shared by every batch.
_SCALE = 20000.0            # float intensity 1.0 -> uint16 counts
_BASE_BLUR = 0.7            # optical blur sigma (pixels)
_BASE_NOISE = 0.01          # noise level without batch noise
_BASE_BACKGROUND = 0.04     # autofluorescence in every channel, so thresholds are meaningful
_ROW_LETTERS = "ABCDEFGHIJKLMNOP"


def resolve_params(params: dict | None = None) -> dict:
    """Merge a partial parameter dict over DEFAULTS (nested for "batch") and validate it.

    Unknown keys raise ValueError naming them, so a typo in a config never silently falls
    back to a default.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown synth parameter(s): {', '.join(unknown)} "
                         f"(known: {', '.join(DEFAULTS)})")
    batch = dict(params.pop("batch", None) or {})
    unknown = sorted(set(batch) - set(DEFAULTS["batch"]))
    if unknown:
        raise ValueError(f"unknown synth batch parameter(s): "
                         f"{', '.join('batch.' + k for k in unknown)} "
                         f"(known: {', '.join(DEFAULTS['batch'])})")
    p = {**DEFAULTS, **params, "batch": {**DEFAULTS["batch"], **batch}}

    def check(ok: bool, key: str, rule: str) -> None:
        if not ok:
            value = p["batch"][key[6:]] if key.startswith("batch.") else p[key]
            raise ValueError(f"synth parameter {key}={value!r}: {rule}")

    check(1 <= p["rows"] <= 16, "rows", "must be 1..16")
    check(1 <= p["cols"] <= 24, "cols", "must be 1..24")
    check(p["sites"] >= 1, "sites", "must be >= 1")
    check(p["image_size"] >= 32, "image_size", "must be >= 32")
    check(p["cells_per_site"] >= 0, "cells_per_site", "must be >= 0")
    check(p["nucleus_radius"] > 0, "nucleus_radius", "must be > 0")
    check(p["cell_radius"] > p["nucleus_radius"], "cell_radius", "must exceed nucleus_radius")
    check(p["n_treatments"] >= 0 and p["replicates"] >= 1, "n_treatments",
          "n_treatments must be >= 0 and replicates >= 1")
    check(p["n_treatments"] * p["replicates"] < p["rows"] * p["cols"], "n_treatments",
          "n_treatments x replicates must leave at least one DMSO well")
    check(0 <= p["n_inactive"] <= p["n_treatments"], "n_inactive", "must be 0..n_treatments")
    check(0 <= p["effect_size"] < 1, "effect_size", "must be in [0, 1)")
    check(p["cell_heterogeneity"] >= 0, "cell_heterogeneity", "must be >= 0")
    for key, value in p["batch"].items():
        check(value >= 0, f"batch.{key}", "batch strengths must be >= 0")
    return p


def _treatment_names(n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"cpd{i:0{width}d}" for i in range(1, n + 1)]


def _design(p: dict) -> tuple[pd.DataFrame, dict[str, str]]:
    """Treatment effects and mechanism of action (moa) labels, from the seed.

    Active compounds are grouped into moa classes of about two; a class shares its
    primary knob and direction (its moa name, e.g. "nucleus_size_up"), and each compound
    may change one further random knob, so same-moa compounds are similar but not equal.
    """
    rng = np.random.default_rng([p["seed"], zlib.crc32(b"treatments")])
    names = _treatment_names(p["n_treatments"])
    inactive = {names[i] for i in rng.choice(len(names), p["n_inactive"], replace=False)}
    active = [names[i] for i in rng.permutation(len(names)) if names[i] not in inactive]
    n_classes = math.ceil(len(active) / 2)
    knob_order = rng.permutation(len(KNOBS))
    classes = []
    for c in range(n_classes):
        sign = int(rng.choice([-1, 1])) if c < len(KNOBS) else -classes[c - len(KNOBS)][1]
        classes.append((KNOBS[knob_order[c % len(KNOBS)]], sign))

    size = p["effect_size"]
    rows = [{"treatment": NEGCON, "active": False, **dict.fromkeys(KNOBS, 1.0)}]
    moa = {NEGCON: "negcon"}
    effects = {}
    for j, name in enumerate(active):
        knob, sign = classes[j % n_classes]
        change = {knob: 1.0 + sign * size}
        if rng.random() < 0.5:
            other = [k for k in KNOBS if k != knob]
            change[other[rng.integers(len(other))]] = 1.0 + rng.choice([-1, 1]) * size
        effects[name] = change
        moa[name] = f"{knob}_{'up' if sign > 0 else 'down'}"
    for name in names:
        rows.append({"treatment": name, "active": name not in inactive,
                     **dict.fromkeys(KNOBS, 1.0), **effects.get(name, {})})
        moa.setdefault(name, "inactive")
    return pd.DataFrame(rows), moa


def treatment_effects(params: dict) -> pd.DataFrame:
    """Ground truth per treatment (DMSO first): treatment, active, one multiplier per knob.

    Size knobs (nucleus_size, cell_size) multiply area; intensity knobs multiply the
    channel's brightness; mito_texture multiplies the number of mitochondrial puncta while
    dividing their brightness (texture changes, mean intensity does not); cell_elongation
    multiplies the cell's aspect ratio.
    """
    return _design(resolve_params(params))[0]


def plate_layout(params: dict) -> pd.DataFrame:
    """The platemap every plate shares: well, treatment, role (negcon|treatment), moa.

    Wells are assigned to treatments by a seeded shuffle, so the layout is the same on
    every plate and in every process; rows are in plate (row-major) order.
    """
    p = resolve_params(params)
    wells = [f"{_ROW_LETTERS[r]}{c + 1:02d}" for r in range(p["rows"]) for c in range(p["cols"])]
    treatments = [t for t in _treatment_names(p["n_treatments"]) for _ in range(p["replicates"])]
    treatments += [NEGCON] * (len(wells) - len(treatments))
    rng = np.random.default_rng([p["seed"], zlib.crc32(b"layout")])
    order = rng.permutation(len(wells))
    by_well = {wells[w]: treatments[k] for k, w in enumerate(order)}
    moa = _design(p)[1]
    return pd.DataFrame({
        "well": wells,
        "treatment": [by_well[w] for w in wells],
        "role": ["negcon" if by_well[w] == NEGCON else "treatment" for w in wells],
        "moa": [moa[by_well[w]] for w in wells],
    })


def batch_effects(batch: str, params: dict) -> dict:
    """Technical effects of one batch, deterministic from (seed, crc32(batch name)).

    The random draws are the same whatever the strengths, and every effect is its strength
    times a fixed draw, so zero strengths give gain 1, no offset, vignetting, extra blur,
    background or noise, and density and cell size multipliers of 1.
    """
    p = resolve_params(params)
    s = p["batch"]
    rng = np.random.default_rng([p["seed"], zlib.crc32(str(batch).encode())])
    n = len(CHANNELS)
    gain_z, offset_z = rng.standard_normal(n), rng.standard_normal(n)
    background_u = rng.uniform(0.5, 1.5, n)
    vignette_u, blur_u, noise_u = rng.uniform(0.5, 1.5, 3)
    centre = rng.uniform(-0.15, 0.15, 2) if s["vignetting"] > 0 else np.zeros(2)
    density = float(np.exp(s["density"] * rng.standard_normal()))
    return {
        "batch": str(batch),
        "gain": {c: float(np.exp(s["gain"] * z)) for c, z in zip(CHANNELS, gain_z)},
        "offset": {c: float(s["offset"] * abs(z)) for c, z in zip(CHANNELS, offset_z)},
        "background": {c: float(s["background"] * u) for c, u in zip(CHANNELS, background_u)},
        "vignetting_amplitude": float(s["vignetting"] * vignette_u),
        # centre of the falloff relative to the image centre, in image sides (y, x)
        "vignetting_center": [float(v) for v in centre],
        "blur_sigma": float(s["blur"] * blur_u),
        "noise": float(s["noise"] * noise_u),
        "density": density,
        # cells in denser batches are smaller (area multiplier)
        "cell_size": density ** -0.5,
    }


def vignetting_field(effects: dict, size: int) -> np.ndarray:
    """Multiplicative illumination field of a batch: 1 - amplitude * r^2, r = 1 at the corners."""
    centre_y, centre_x = [(size - 1) / 2 + v * size for v in effects["vignetting_center"]]
    y, x = np.ogrid[:size, :size]
    r2 = ((y - centre_y) ** 2 + (x - centre_x) ** 2) / (2 * (size / 2) ** 2)
    return np.clip(1.0 - effects["vignetting_amplitude"] * r2, 0.05, None).astype(np.float32)


# --------------------------------------------------------------------------- rendering

def _place_centres(rng, n: int, size: int, min_dist: float) -> np.ndarray:
    """Up to n uniform centres at least min_dist apart (rejection sampling)."""
    accepted = np.empty((n, 2))
    k = 0
    for candidate in rng.uniform(0, size - 1, size=(30 * n + 10, 2)):
        if k == n:
            break
        if k == 0 or np.min(np.sum((accepted[:k] - candidate) ** 2, axis=1)) >= min_dist ** 2:
            accepted[k] = candidate
            k += 1
    return accepted[:k]


def _shape_distance(dy, dx, radius, aspect, theta, amps, phases) -> np.ndarray:
    """Normalised distance (1 on the outline) of an ellipse with a wobbly outline.

    ``radius`` is the equal-area radius; the outline radius is modulated by harmonics
    2..4 of the polar angle so shapes are not perfect ellipses.
    """
    c, s = math.cos(theta), math.sin(theta)
    stretch = math.sqrt(aspect)
    u = (dx * c + dy * s) / (radius * stretch)
    v = (dy * c - dx * s) * stretch / radius
    phi = np.arctan2(v, u)
    wobble = 1.0
    for k, (a, ph) in enumerate(zip(amps, phases), start=2):
        wobble = wobble + a * np.cos(k * phi + ph)
    return np.hypot(u, v) / wobble


def _smooth_noise(rng, size: int, sigma: float, high_pass: float | None = None) -> np.ndarray:
    """Unit-SD Gaussian-filtered noise (band-passed when high_pass is given)."""
    white = rng.standard_normal((size, size)).astype(np.float32)
    field = ndimage.gaussian_filter(white, sigma)
    if high_pass is not None:
        field -= ndimage.gaussian_filter(white, high_pass)
    return field / max(float(field.std()), 1e-6)


def _cell_knobs(rng, effect: np.ndarray, n: int, heterogeneity: float) -> np.ndarray:
    """Per-cell multipliers (n x knobs): the log effect scaled by max(0, 1 + h * z)."""
    spread = np.maximum(0.0, 1.0 + heterogeneity * rng.standard_normal((n, len(KNOBS))))
    return np.exp(np.log(effect)[None, :] * spread)


def _render_site(rng, p: dict, fx: dict, effect: np.ndarray, vignette: np.ndarray):
    """One site: (uint16 image per channel, nuclei labels, cell labels, true cell table)."""
    size = p["image_size"]
    n = rng.poisson(p["cells_per_site"] * fx["density"])
    centres = _place_centres(rng, n, size, 1.6 * p["nucleus_radius"])
    n = len(centres)
    knobs = _cell_knobs(rng, effect, n, p["cell_heterogeneity"])
    k = dict(zip(KNOBS, knobs.T))

    def lognormal(sd):
        return np.exp(sd * rng.standard_normal(n))

    r_nuc = p["nucleus_radius"] * np.sqrt(k["nucleus_size"]) * lognormal(0.1)
    r_cell = p["cell_radius"] * np.sqrt(k["cell_size"] * fx["cell_size"]) * lognormal(0.12)
    r_cell = np.maximum(r_cell, 1.4 * r_nuc)
    aspect_cell = np.maximum(1.0, 1.3 * lognormal(0.15) * k["cell_elongation"])
    aspect_nuc = np.maximum(1.0, (1 + np.abs(rng.normal(0, 0.15, n)))
                            * np.sqrt(k["cell_elongation"]))
    theta = rng.uniform(0, np.pi, n)
    cell_amps, nuc_amps = rng.uniform(0, 0.08, (n, 3)), rng.uniform(0, 0.03, (n, 3))
    cell_phases, nuc_phases = rng.uniform(0, 2 * np.pi, (2, n, 3))
    props = {  # per-cell rendering properties; intensity knobs scale a natural spread
        "r_cell": r_cell,
        "dna": 1.0 * k["dna_intensity"] * lognormal(0.12),
        "er": 0.55 * k["er_intensity"] * lognormal(0.15),
        "rna": 0.4 * k["rna_intensity"] * lognormal(0.15),
        "agp": 0.6 * k["agp_intensity"] * lognormal(0.15),
        "mito": 0.6 * lognormal(0.15),
        "mito_texture": k["mito_texture"],
    }

    # Size-weighted Voronoi: a pixel belongs to the cell with the smallest normalised
    # distance below 1, so cells touch without overlapping and each keeps its centre.
    cells = np.zeros((size, size), np.int32)
    best = np.full((size, size), np.inf, np.float32)
    windows = []
    for i in range(n):
        cy, cx = centres[i]
        half = int(math.ceil(r_cell[i] * math.sqrt(aspect_cell[i]) * 1.3)) + 1
        y0, y1 = max(0, int(cy) - half), min(size, int(cy) + half + 2)
        x0, x1 = max(0, int(cx) - half), min(size, int(cx) + half + 2)
        window = (slice(y0, y1), slice(x0, x1))
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        d_cell = _shape_distance(dy, dx, r_cell[i], aspect_cell[i], theta[i],
                                 cell_amps[i], cell_phases[i])
        d_nuc = _shape_distance(dy, dx, r_nuc[i], aspect_nuc[i], theta[i],
                                nuc_amps[i], nuc_phases[i])
        closer = (d_cell < 1) & (d_cell < best[window])
        best[window][closer] = d_cell[closer]
        cells[window][closer] = i + 1
        windows.append((window, d_nuc))

    centre_px = np.round(centres).astype(int)
    cells = _keep_centre_components(cells, centre_px)
    nuclei = np.zeros_like(cells)
    d_nuc_map = np.ones((size, size), np.float32)
    for i, (window, d_nuc) in enumerate(windows):
        own = (cells[window] == i + 1) & (d_nuc < 1)
        nuclei[window][own] = i + 1
        d_nuc_map[window][own] = d_nuc[own]
    nuclei = _keep_centre_components(nuclei, centre_px)

    # Renumber so labels are 1..m and every cell has its nucleus (drops any that lost it).
    keep = np.flatnonzero(np.bincount(nuclei.ravel(), minlength=n + 1)[1:] > 0)
    relabel = np.zeros(n + 1, np.int32)
    relabel[keep + 1] = np.arange(1, len(keep) + 1, dtype=np.int32)
    cells, nuclei = relabel[cells], relabel[nuclei]
    lut = {name: np.concatenate([[1.0], v[keep]]).astype(np.float32) for name, v in props.items()}

    signal = _channels(rng, cells, nuclei, d_nuc_map, lut)
    images = {c: _acquire(rng, signal[c], c, fx, vignette) for c in CHANNELS}
    table = pd.DataFrame({
        "label": np.arange(1, len(keep) + 1, dtype=np.int32),
        "center_y": centres[keep, 0], "center_x": centres[keep, 1],
        "nucleus_area": np.bincount(nuclei.ravel(), minlength=len(keep) + 1)[1:],
        "cell_area": np.bincount(cells.ravel(), minlength=len(keep) + 1)[1:],
        **{name: knobs[keep, i] for i, name in enumerate(KNOBS)},
    })
    return images, nuclei, cells, table


def _keep_centre_components(labels: np.ndarray, centre_px: np.ndarray) -> np.ndarray:
    """Zero every fragment of label i that is not 4-connected to centre pixel i."""
    if not len(centre_px):
        return labels
    components = connected_components(labels, background=0, connectivity=1)
    at_centre = components[centre_px[:, 0], centre_px[:, 1]]
    own = labels[centre_px[:, 0], centre_px[:, 1]] == np.arange(1, len(centre_px) + 1)
    return np.where(np.isin(components, at_centre[own & (at_centre > 0)]), labels, 0
                    ).astype(np.int32)


def _spots(rng, rate: np.ndarray, peak: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian puncta at Poisson(rate) per pixel, each of height ~peak (before optics)."""
    impulses = rng.poisson(rate).astype(np.float32) * peak * (2 * math.pi * sigma ** 2)
    return ndimage.gaussian_filter(impulses, sigma)


def _channels(rng, cells, nuclei, d_nuc, lut) -> dict[str, np.ndarray]:
    """Noise-free float intensity of each channel (before optics and camera)."""
    size = cells.shape[0]
    inside, nuc = cells > 0, nuclei > 0
    cyto = inside & ~nuc
    # distance (px) to the nearest nucleus, and to the own cell's outline
    to_nucleus = ndimage.distance_transform_edt(~nuc).astype(np.float32)
    to_edge = ndimage.distance_transform_edt(~find_boundaries(cells, mode="inner")
                                             ).astype(np.float32)
    perinuclear = cyto * np.exp(-to_nucleus / (0.45 * lut["r_cell"][cells]))
    dome = nuc * (0.7 + 0.3 * np.sqrt(np.clip(1 - d_nuc ** 2, 0, 1)))

    dna = lut["dna"][nuclei] * dome * (1 + 0.2 * _smooth_noise(rng, size, 1.5))
    er_texture = np.clip(1 + 0.6 * _smooth_noise(rng, size, 0.8, high_pass=3.0), 0.1, None)
    er = lut["er"][cells] * (perinuclear * er_texture + 0.15 * nuc)

    core = nuc & (d_nuc < 0.6)  # nucleoli: ~2 per nucleus in its inner part
    core_area = np.bincount(nuclei[core], minlength=len(lut["rna"]))
    nucleolus_rate = np.where(core, 2.0 / np.maximum(core_area, 1)[nuclei], 0.0)
    rna_texture = 1 + 0.25 * _smooth_noise(rng, size, 2.0)
    rna = (lut["rna"][cells] * ((cyto * 0.5 + 0.5 * perinuclear) * rna_texture + 0.35 * nuc)
           + _spots(rng, nucleolus_rate, 1.2 * lut["rna"][nuclei], 1.3))

    cortex = np.exp(-((to_edge / 1.5) ** 2))
    agp_texture = np.clip(1 + 0.3 * _smooth_noise(rng, size, 1.0), 0.2, None)
    agp = lut["agp"][cells] * inside * (0.2 + cortex) * agp_texture

    # mito_texture multiplies the puncta count and divides their brightness
    texture = lut["mito_texture"][cells]
    mito = (lut["mito"][cells] * 0.1 * perinuclear
            + _spots(rng, 0.08 * texture * perinuclear, 0.8 * lut["mito"][cells] / texture, 1.0))
    return dict(zip(CHANNELS, (dna, er, rna, agp, mito)))


def _acquire(rng, signal: np.ndarray, channel: str, fx: dict, vignette: np.ndarray
             ) -> np.ndarray:
    """Optics and camera: blur, background, vignetting x gain, offset, noise -> uint16."""
    image = ndimage.gaussian_filter(signal.astype(np.float32), math.hypot(_BASE_BLUR,
                                                                         fx["blur_sigma"]))
    image = ((image + _BASE_BACKGROUND + fx["background"][channel]) * vignette
             * fx["gain"][channel] + fx["offset"][channel])
    # shot-like noise: SD = level * sqrt(intensity + read-noise floor)
    noise = math.hypot(_BASE_NOISE, fx["noise"])
    image += noise * np.sqrt(0.05 + image) * rng.standard_normal(image.shape, np.float32)
    return np.clip(np.rint(image * _SCALE), 0, 65535).astype(np.uint16)


# --------------------------------------------------------------------------- plates

def generate_plate(out_dir, plate: str, batch: str, params: dict) -> None:
    """Write one plate's images, platemap and truth into out_dir, atomically.

    Everything is written into a sibling ``{out_dir}.tmp-*`` folder that replaces out_dir
    only when complete, so a killed run never leaves a half plate. Each site's randomness
    comes from (seed, plate, well, site), so a plate is reproducible in any process.
    """
    p = resolve_params(params)
    out_dir = Path(out_dir)
    layout = plate_layout(p)
    truth_effects = treatment_effects(p)
    effects = truth_effects.set_index("treatment")[list(KNOBS)]
    fx = batch_effects(batch, p)
    vignette = vignetting_field(fx, p["image_size"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        (tmp / "images").mkdir()
        masks, tables = {}, []
        for well, treatment in zip(layout["well"], layout["treatment"]):
            row, col = _ROW_LETTERS.index(well[0]) + 1, int(well[1:])
            effect = effects.loc[treatment].to_numpy(float)
            for site in range(1, p["sites"] + 1):
                rng = np.random.default_rng([p["seed"], zlib.crc32(plate.encode()),
                                             zlib.crc32(well.encode()), site])
                images, nuclei, cells, table = _render_site(rng, p, fx, effect, vignette)
                for channel_id, channel in enumerate(CHANNELS, start=1):
                    name = f"r{row:02d}c{col:02d}f{site:02d}p01-ch{channel_id}sk1fk1fl1.tiff"
                    tifffile.imwrite(tmp / "images" / name, images[channel])
                masks[f"{well}_{site}_nuclei"] = nuclei
                masks[f"{well}_{site}_cells"] = cells
                table.insert(0, "Metadata_Plate", plate)
                table.insert(1, "Metadata_Batch", batch)
                table.insert(2, "Metadata_Well", well)
                table.insert(3, "Metadata_Site", site)
                table.insert(9, "Metadata_Treatment", treatment)
                tables.append(table)
        with atomic_path(tmp / "platemap.tsv") as path:
            layout.to_csv(path, sep="\t", index=False)
        save_npz(tmp / "truth" / "masks.npz", **masks)
        write_parquet(pd.concat(tables, ignore_index=True), tmp / "truth" / "cells.parquet")
        with atomic_path(tmp / "truth" / "treatments.tsv") as path:
            truth_effects.to_csv(path, sep="\t", index=False)
        write_json(fx, tmp / "truth" / "batch_effects.json")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
        [{"plate": plate, "batch": batch, "images": f"{root}/{plate}/images",
          "pattern": "opera_phenix", "platemap": f"{root}/{plate}/platemap.tsv"}
         for plate, batch in plates],
        columns=["plate", "batch", "images", "pattern", "platemap"])
    with atomic_path(path) as tmp:
        sheet.to_csv(tmp, sep="\t", index=False)
