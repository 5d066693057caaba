"""Rendering one demo site: touching cells around nuclei, five stains, optics and camera.

Label images of touching cells (a size-weighted Voronoi partition of elliptical cells with
wobbly outlines around elliptical nuclei) are painted into five Cell Painting-like channels,
then blurred, illuminated, gained, offset and noised by the batch's effects into uint16.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.measure import label as connected_components
from skimage.segmentation import find_boundaries

from debatch.demo.design import CHANNELS, GOLGI, KNOBS

# Intrinsic image formation, shared by every batch.
_SCALE = 20000.0  # float intensity 1.0 -> uint16 counts
_BASE_BLUR = 0.7  # optical blur sigma (pixels)
_BASE_NOISE = 0.01  # noise level without batch noise
_BASE_BACKGROUND = 0.04  # autofluorescence in every channel, so thresholds are meaningful
_GAMMA_REFERENCE = 0.5  # intensity a detector gamma leaves unchanged
_STAINED = 0.8  # DNA stain within this fraction of a nucleus's radius (the rest: its rim)
_LAMELLA = 3.0  # px over which the AGP stain fades towards a cell's free edge


def _place_centres(rng, n: int, size: int, min_dist: float) -> np.ndarray:
    """Up to n uniform centres at least min_dist apart (rejection sampling)."""
    accepted = np.empty((n, 2))
    k = 0
    for candidate in rng.uniform(0, size - 1, size=(30 * n + 10, 2)):
        if k == n:
            break
        if k == 0 or np.min(np.sum((accepted[:k] - candidate) ** 2, axis=1)) >= min_dist**2:
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


def _draw_cells(rng, demo: dict, fx: dict, effect: np.ndarray):
    """Centres, per-cell knob multipliers, outline geometry and stain properties of a site's
    cells (the site's random draws before painting, in a fixed order)."""
    n = rng.poisson(demo["cells_per_site"] * fx["density"])
    centres = _place_centres(rng, n, demo["image_size"], 1.6 * demo["nucleus_radius"])
    n = len(centres)
    knobs = _cell_knobs(rng, effect, n, demo["cell_heterogeneity"])
    k = dict(zip(KNOBS, knobs.T))

    def lognormal(sd):
        return np.exp(sd * rng.standard_normal(n))

    r_nuc = demo["nucleus_radius"] * np.sqrt(k["nucleus_size"]) * lognormal(0.1)
    r_cell = demo["cell_radius"] * np.sqrt(k["cell_size"] * fx["cell_size"]) * lognormal(0.12)
    r_cell = np.maximum(r_cell, 1.4 * r_nuc)
    aspect_cell = np.maximum(1.0, 1.3 * lognormal(0.15) * k["cell_elongation"])
    aspect_nuc = np.maximum(
        1.0, (1 + np.abs(rng.normal(0, 0.15, n))) * np.sqrt(k["cell_elongation"])
    )
    theta = rng.uniform(0, np.pi, n)
    cell_amps, nuc_amps = rng.uniform(0, 0.08, (n, 3)), rng.uniform(0, 0.03, (n, 3))
    cell_phases, nuc_phases = rng.uniform(0, 2 * np.pi, (2, n, 3))
    shapes = {
        "cell": (r_cell, aspect_cell, theta, cell_amps, cell_phases),
        "nucleus": (r_nuc, aspect_nuc, theta, nuc_amps, nuc_phases),
    }
    props = {  # per-cell rendering properties; intensity knobs scale a natural spread
        "r_cell": r_cell,
        "dna": 1.0 * k["dna_intensity"] * lognormal(0.12),
        "er": 0.55 * k["er_intensity"] * lognormal(0.15),
        "rna": 0.4 * k["rna_intensity"] * lognormal(0.15),
        "agp": 0.6 * k["agp_intensity"] * lognormal(0.15),
        "mito": 0.6 * lognormal(0.15),
        "mito_texture": k["mito_texture"],
    }
    return centres, knobs, shapes, props


def _paint_labels(centres: np.ndarray, shapes: dict, size: int, confluence: float):
    """(cells, nuclei, normalised distance inside each nucleus) label images of a site.

    Size-weighted Voronoi: a pixel belongs to the cell with the smallest normalised distance
    below ``reach``, so cells touch without overlapping and each keeps its centre. Confluence
    stretches the reach (1 -> 1 + 2 x confluence), so cells spread until neighbours stop them.
    """
    reach = 1.0 + 2.0 * confluence
    r_cell, aspect_cell = shapes["cell"][:2]
    cells = np.zeros((size, size), np.int32)
    best = np.full((size, size), np.inf, np.float32)
    windows = []
    for i, (cy, cx) in enumerate(centres):
        half = int(math.ceil(r_cell[i] * math.sqrt(aspect_cell[i]) * 1.3 * reach)) + 1
        y0, y1 = max(0, int(cy) - half), min(size, int(cy) + half + 2)
        x0, x1 = max(0, int(cx) - half), min(size, int(cx) + half + 2)
        window = (slice(y0, y1), slice(x0, x1))
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        d_cell, d_nuc = (
            _shape_distance(dy, dx, *(value[i] for value in shapes[part]))
            for part in ("cell", "nucleus")
        )
        closer = (d_cell < reach) & (d_cell < best[window])
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
    return cells, _keep_centre_components(nuclei, centre_px), d_nuc_map


def render_site(
    rng, demo: dict, fx: dict, effect: np.ndarray, vignette: np.ndarray, channels=CHANNELS
):
    """One site: (uint16 image per channel, nuclei labels, cell labels, true cell table).

    ``channels``: CHANNELS, or CHANNELS + (GOLGI,) for a sixth stain (RxRx1's WGA: the Golgi
    beside the nucleus and the membrane), painted and acquired after the five, so the five
    channels' random draws stay the same."""
    centres, knobs, shapes, props = _draw_cells(rng, demo, fx, effect)
    cells, nuclei, d_nuc_map = _paint_labels(
        centres, shapes, demo["image_size"], demo["confluence"]
    )

    # Renumber so labels are 1..m and every cell has its nucleus (drops any that lost it).
    n = len(centres)
    keep = np.flatnonzero(np.bincount(nuclei.ravel(), minlength=n + 1)[1:] > 0)
    relabel = np.zeros(n + 1, np.int32)
    relabel[keep + 1] = np.arange(1, len(keep) + 1, dtype=np.int32)
    cells, nuclei = relabel[cells], relabel[nuclei]
    lut = {name: np.concatenate([[1.0], v[keep]]).astype(np.float32) for name, v in props.items()}

    signal = _channels(rng, cells, nuclei, d_nuc_map, lut, demo["confluence"], GOLGI in channels)
    signal = _crosstalk(signal, fx, channels)
    images = {c: _acquire(rng, signal[c], c, fx, vignette, channels) for c in channels}
    table = pd.DataFrame(
        {
            "label": np.arange(1, len(keep) + 1, dtype=np.int32),
            "center_y": centres[keep, 0],
            "center_x": centres[keep, 1],
            "nucleus_area": np.bincount(nuclei.ravel(), minlength=len(keep) + 1)[1:],
            "cell_area": np.bincount(cells.ravel(), minlength=len(keep) + 1)[1:],
            **{name: knobs[keep, i] for i, name in enumerate(KNOBS)},
        }
    )
    return images, nuclei, cells, table


def _keep_centre_components(labels: np.ndarray, centre_px: np.ndarray) -> np.ndarray:
    """Zero every fragment of label i that is not 4-connected to centre pixel i."""
    if not len(centre_px):
        return labels
    components = connected_components(labels, background=0, connectivity=1)
    at_centre = components[centre_px[:, 0], centre_px[:, 1]]
    own = labels[centre_px[:, 0], centre_px[:, 1]] == np.arange(1, len(centre_px) + 1)
    return np.where(np.isin(components, at_centre[own & (at_centre > 0)]), labels, 0).astype(
        np.int32
    )


def _spots(rng, rate: np.ndarray, peak: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian puncta at Poisson(rate) per pixel, each of height ~peak (before optics)."""
    impulses = rng.poisson(rate).astype(np.float32) * peak * (2 * math.pi * sigma**2)
    return ndimage.gaussian_filter(impulses, sigma)


def _channels(
    rng, cells, nuclei, d_nuc, lut, confluence: float, wga: bool = False
) -> dict[str, np.ndarray]:
    """Noise-free float intensity of each channel (before optics and camera). In a confluent
    monolayer the AGP stain (WGA) also rings each nucleus: the Golgi, a few px out. With
    ``wga``, a sixth stain (WGA alone): a Golgi ring beside the nucleus and the membrane, as
    bright as the cell's ER and AGP stains' geometric mean."""
    size = cells.shape[0]
    inside, nuc = cells > 0, nuclei > 0
    cyto = inside & ~nuc
    # distance (px) to the nearest nucleus, and to the own cell's outline
    to_nucleus = ndimage.distance_transform_edt(~nuc).astype(np.float32)
    to_edge = ndimage.distance_transform_edt(~find_boundaries(cells, mode="inner")).astype(
        np.float32
    )
    perinuclear = cyto * np.exp(-to_nucleus / (0.45 * lut["r_cell"][cells]))
    # DNA stain fills a nucleus but its rim (the outer fifth of its radius: the envelope and
    # the thin edge of a rounded nucleus), so the outline lies at the foot of the blurred edge,
    # as on real fields: CellProfiler's minimum cross-entropy finds it there, Otsu's
    # half-maximum inside it (docs/segmentation.md).
    stained = d_nuc / _STAINED
    dome = nuc * (stained < 1) * (0.8 + 0.2 * np.sqrt(np.clip(1 - stained**2, 0, 1)))

    dna = lut["dna"][nuclei] * dome * (1 + 0.2 * _smooth_noise(rng, size, 1.5))
    er_texture = np.clip(1 + 0.6 * _smooth_noise(rng, size, 0.8, high_pass=3.0), 0.1, None)
    er = lut["er"][cells] * (perinuclear * er_texture + 0.15 * nuc)

    core = nuc & (d_nuc < 0.6)  # nucleoli: ~2 per nucleus in its inner part
    core_area = np.bincount(nuclei[core], minlength=len(lut["rna"]))
    nucleolus_rate = np.where(core, 2.0 / np.maximum(core_area, 1)[nuclei], 0.0)
    rna_texture = 1 + 0.25 * _smooth_noise(rng, size, 2.0)
    rna = lut["rna"][cells] * (
        (cyto * 0.5 + 0.5 * perinuclear) * rna_texture + 0.35 * nuc
    ) + _spots(rng, nucleolus_rate, 1.2 * lut["rna"][nuclei], 1.3)

    cortex = np.exp(-((to_edge / 1.5) ** 2))
    agp_texture = np.clip(1 + 0.3 * _smooth_noise(rng, size, 1.0), 0.2, None)
    golgi = confluence * cyto * np.exp(-(((to_nucleus - 3.0) / 2.0) ** 2))
    # a cell thins towards its free edge (the lamella), so its stain fades over the last few
    # px there (not where it meets a neighbour): the blurred halo then ends where the cell does
    lamella = np.clip(ndimage.distance_transform_edt(inside) / _LAMELLA, 0, 1)
    agp = lut["agp"][cells] * inside * (0.2 + cortex + golgi) * agp_texture * lamella

    # mito_texture multiplies the puncta count and divides their brightness
    texture = lut["mito_texture"][cells]
    mito = lut["mito"][cells] * 0.1 * perinuclear + _spots(
        rng, 0.08 * texture * perinuclear, 0.8 * lut["mito"][cells] / texture, 1.0
    )
    signal = dict(zip(CHANNELS, (dna, er, rna, agp, mito)))
    if wga:
        ring = cyto * np.exp(-(((to_nucleus - 2.5) / 2.0) ** 2))
        golgi_texture = np.clip(1 + 0.5 * _smooth_noise(rng, size, 1.0), 0.1, None)
        brightness = np.sqrt(lut["er"] * lut["agp"])[cells]
        signal[GOLGI] = brightness * inside * (ring * golgi_texture + 0.3 * cortex + 0.1)
    return signal


def _crosstalk(signal: dict[str, np.ndarray], fx: dict, channels=CHANNELS) -> dict[str, np.ndarray]:
    """Bleed-through: each channel also records a fraction of the bluer neighbouring stain
    (the channel before it in ``channels``), as overlapping emission spectra do."""
    fractions = fx.get("crosstalk", {})
    out = dict(signal)
    for previous, channel in zip(channels, channels[1:]):
        if fractions.get(channel):
            out[channel] = signal[channel] + fractions[channel] * signal[previous]
    return out


def _psf_sigmas(channel: str, fx: dict, channels=CHANNELS) -> tuple[float, float]:
    """(y, x) blur sigmas of a channel: optics + the batch's blur, made anisotropic by its PSF
    elongation and wider towards the red by its chromatic term."""
    sigma = math.hypot(_BASE_BLUR, fx["blur_sigma"])
    sigma *= 1 + fx.get("psf_chromatic", 0.0) * channels.index(channel) / (len(channels) - 1)
    elongation = math.sqrt(fx.get("psf_elongation", 1.0))
    return sigma * elongation, sigma / elongation


def _acquire(
    rng, signal: np.ndarray, channel: str, fx: dict, vignette: np.ndarray, channels=CHANNELS
) -> np.ndarray:
    """Optics and camera: PSF blur, background, illumination, detector gamma, gain, offset,
    noise -> uint16."""
    sigma_y, sigma_x = _psf_sigmas(channel, fx, channels)
    sigma = sigma_y if sigma_y == sigma_x else (sigma_y, sigma_x)
    image = ndimage.gaussian_filter(signal.astype(np.float32), sigma)
    image = (image + _BASE_BACKGROUND + fx["background"][channel]) * vignette
    gamma = fx.get("gamma", {}).get(channel, 1.0)
    if gamma != 1.0:  # a nonlinear detector: equal at the reference level, bent around it
        image = np.float32(_GAMMA_REFERENCE) * (
            np.maximum(image, 0) / np.float32(_GAMMA_REFERENCE)
        ) ** np.float32(gamma)
    image = image * fx["gain"][channel] + fx["offset"][channel]
    # shot-like noise: SD = level * sqrt(intensity + read-noise floor)
    noise = math.hypot(_BASE_NOISE, fx["noise"])
    image += noise * np.sqrt(0.05 + image) * rng.standard_normal(image.shape, np.float32)
    return np.clip(np.rint(image * _SCALE), 0, 65535).astype(np.uint16)
