"""CellProfiler's measurement modules on one segmented site, named as CellProfiler names them.

The numbers are cp_measure's (CellProfiler's own code, lifted out of the GUI), computed on
the illumination-corrected images on CellProfiler's intensity scale (``site_images``). Column
names follow CellProfiler: ``{Object}_{Module}_{Feature}[_{Channel}][_{suffix}]``, e.g.
``Cells_Intensity_MeanIntensity_DNA``, ``Nuclei_AreaShape_Zernike_3_1``,
``Cytoplasm_Texture_Contrast_ER_3_00_256``, ``Cells_Correlation_Costes_DNA_ER``.

Label i of each object set is cell i of the site; an object missing from a set (e.g. a cell
without pixels left for its cytoplasm) gets NaN in that set's columns, as CellProfiler gives
NaN for measurements it cannot make. cp_measure's own NaN (texture of an object smaller than
the texture scale, Costes of a constant channel) are kept as NaN.
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd
from cp_measure._sanitize import sanitize_masks
from cp_measure.core.numba import _feret

from debatch.core.images import cellprofiler_scale
from debatch.features import colocalization, intensity, shape, texture
from debatch.features.granularity import ObjectMeans, granular_spectrum, object_granularity
from debatch.features.objects import bounding_boxes, object_sets
from debatch.features.radial import RadialGeometry, ZernikeBasis, to_edges
from debatch.settings import FEATURES

Measured = dict[str, np.ndarray]  # feature name (without the object prefix) -> value per object


def site_images(raw: Mapping[str, np.ndarray], illum=None) -> dict[str, np.ndarray]:
    """float64 images on CellProfiler's scale: raw / illumination function / the pixel type's
    maximum (65535 for 16 bit), clipped to [0, 1] as CellProfiler's CorrectIlluminationApply
    does by default. Same correction as the crops (raw / function); only the scale differs."""
    images = {}
    for channel, image in raw.items():
        values = image.astype(np.float64) * cellprofiler_scale(image.dtype)
        if illum is not None:
            values /= illum[channel]
        images[channel] = np.clip(values, 0.0, 1.0, out=values)
    return images


def _intensity(labels, pixels, channel, features) -> Measured:
    # legacy: CellProfiler's own quartile convention (n * q), not numpy's ((n - 1) * q)
    measured = intensity.get_intensity(labels, pixels, legacy=True)
    return {f"{key}_{channel}": value for key, value in measured.items()}


def _texture(objects: Objects) -> Measured:
    """MeasureTexture of every channel at every scale; each channel is quantised to the grey
    levels once per site (Site.quantised), for all object sets and scales."""
    levels, out = objects.features["texture_gray_levels"], {}
    for channel, image in objects.site.images.items():
        if channel not in objects.site.quantised:
            objects.site.quantised[channel] = texture.grey_levels(image, levels)
        for scale in objects.features["texture_scales"]:
            measured = texture.get_texture(
                objects.labels, objects.site.quantised[channel], scale, levels, objects.boxes
            )
            for key, value in measured.items():
                feature, suffix = key.split("_", 1)
                out[f"Texture_{feature}_{channel}_{suffix}"] = value
    return out


# cp_measure's key -> (CellProfiler's feature, whether the channel pair is reversed)
PAIR_NAMES = {
    "Correlation_Pearson": ("Correlation", False),
    "Correlation_Manders_1": ("Manders", False),
    "Correlation_Manders_2": ("Manders", True),
    "Correlation_RWC_1": ("RWC", False),
    "Correlation_RWC_2": ("RWC", True),
    "Correlation_Overlap": ("Overlap", False),
    "Correlation_K_1": ("K", False),
    "Correlation_K_2": ("K", True),
    "Correlation_Costes_1": ("Costes", False),
    "Correlation_Costes_2": ("Costes", True),
}


def _correlation(labels, images, features, costes) -> Measured:
    """MeasureColocalization of every channel pair (CellProfiler reports Pearson and Overlap
    once per pair, the directional coefficients both ways: ``Manders_DNA_ER`` is DNA's share).
    Per channel, the object pixels' values, ranks, maxima and means are shared by all its
    pairs."""
    pixels = colocalization.ObjectPixels(labels)
    values = {channel: image.ravel()[pixels.index] for channel, image in images.items()}
    ranks = {channel: colocalization.dense_ranks(v) for channel, v in values.items()}
    maxima = {channel: pixels.maximum(v) for channel, v in values.items()}
    means = {channel: pixels.mean(v) for channel, v in values.items()}
    out = {}
    for a, b in itertools.combinations(images, 2):
        measured = colocalization.pair_coefficients(
            pixels,
            (values[a], values[b]),
            (ranks[a], ranks[b]),
            (maxima[a], maxima[b]),
            (means[a], means[b]),
            features["correlation_threshold"],
            costes[a, b],
        )
        for key, (feature, reversed_pair) in PAIR_NAMES.items():
            first, second = (b, a) if reversed_pair else (a, b)
            out[f"Correlation_{feature}_{first}_{second}"] = measured[key]
    return out


@dataclass
class Site:
    """What every object set of one site shares: its images and their image-level results
    (Costes' thresholds per channel pair, the granular spectrum per channel, each channel
    quantised to the texture's grey levels, made by the first object set measured)."""

    images: Mapping[str, np.ndarray]
    costes: dict = field(default_factory=dict)
    spectra: dict = field(default_factory=dict)
    quantised: dict = field(default_factory=dict)


class Objects:
    """One object set of a site (labels 1..N) and what its modules share, made on first use:
    the Zernike moments of the shape and of every channel come from one pass (AreaShape and
    radial Zernikes use the same polynomials on the same enclosing circles), and each pixel's
    distance to its object's edge serves the radial distribution and AreaShape's radii."""

    def __init__(self, labels: np.ndarray, site: Site, features: dict):
        self.labels, self.site, self.features = labels, site, features

    @cached_property
    def zernikes(self) -> tuple[Measured, dict[str, Measured]]:
        """``ZernikeBasis.measure`` of the channels (none if radial Zernikes are off)."""
        wanted = "radial_zernikes" in self.features["measurements"]
        basis = ZernikeBasis(self.labels, self.features["zernike_degree"])
        return basis.measure(self.site.images if wanted else {})

    @cached_property
    def to_edge(self) -> np.ndarray:
        return to_edges(self.labels)

    @cached_property
    def boxes(self) -> np.ndarray:
        return bounding_boxes(self.labels)


def _shape(objects: Objects) -> Measured:
    labels = objects.labels
    measured = shape.get_sizeshape(labels, objects.to_edge, objects.boxes)
    measured |= objects.zernikes[0]
    measured |= _feret.get_feret(labels, None)
    return {f"AreaShape_{key}": value for key, value in measured.items()}


@contextmanager
def _timed(timings: dict | None, module: str):
    """Adds the block's CPU seconds (this thread's) to ``timings[module]`` when asked for."""
    started = time.thread_time()
    yield
    if timings is not None:
        timings[module] = timings.get(module, 0.0) + time.thread_time() - started


def prepare_site(
    images: Mapping[str, np.ndarray], features: dict, scale_max: int, timings: dict | None = None
) -> Site:
    """The image-level work of a site, done once for Nuclei, Cells and Cytoplasm: Costes'
    thresholds (CellProfiler finds them on the whole image and applies them to every object)
    and each channel's granular spectrum (the texture's grey levels are made on first use)."""
    site = Site(images)
    if "correlation" in features["measurements"]:
        with _timed(timings, "correlation"):
            site.costes = {
                (a, b): colocalization.costes_thresholds(images[a], images[b], scale_max)
                for a, b in itertools.combinations(images, 2)
            }
    if "granularity" in features["measurements"]:
        with _timed(timings, "granularity"):
            site.spectra = {c: granular_spectrum(image, features) for c, image in images.items()}
    return site


def _granularity(objects: Objects) -> Measured:
    labels, site, features = objects.labels, objects.site, objects.features
    spectra = [s for s in site.spectra.values() if s is not None]
    means = ObjectMeans(labels, spectra[0].small_shape) if spectra else None
    out = {}
    for channel, spectrum in site.spectra.items():
        measured = object_granularity(spectrum, labels, means, features["granularity_spectrum"])
        out |= {f"{key}_{channel}": value for key, value in measured.items()}
    return out


def _radial_name(key: str, channel: str) -> str:
    """``RadialDistribution_FracAtD_1of4`` -> ``RadialDistribution_FracAtD_{channel}_1of4``."""
    module, feature, suffix = key.split("_", 2)
    return f"{module}_{feature}_{channel}_{suffix}"


def _radial_distribution(objects: Objects) -> Measured:
    geometry = RadialGeometry(objects.labels, objects.features["radial_bins"], objects.to_edge)
    out = {}
    for channel, image in objects.site.images.items():
        out |= {_radial_name(k, channel): v for k, v in geometry.measure(image).items()}
    return out


def _radial_zernikes(objects: Objects) -> Measured:
    return {
        _radial_name(key, channel): value
        for channel, measured in objects.zernikes[1].items()
        for key, value in measured.items()
    }


def _per_channel(function: Callable) -> Callable:
    """A module measured channel by channel (cp_measure's signature) as a module of the site."""

    def measure(objects: Objects) -> Measured:
        out = {}
        for channel, image in objects.site.images.items():
            out |= function(objects.labels, image, channel, objects.features)
        return out

    return measure


_MODULES: dict[str, Callable] = {
    "areashape": _shape,
    "intensity": _per_channel(_intensity),
    "texture": _texture,
    "granularity": _granularity,
    "radial_distribution": _radial_distribution,
    "radial_zernikes": _radial_zernikes,
    "correlation": lambda objects: (
        _correlation(objects.labels, objects.site.images, objects.features, objects.site.costes)
        if len(objects.site.images) > 1
        else {}
    ),
}


def measure_objects(
    labels: np.ndarray, site: Site, features: dict, timings: dict | None = None
) -> Measured:
    """Every configured module on one object set (labels 1..N, no gaps: see measure_site)."""
    measured: Measured = {}
    objects = Objects(labels, site, features)
    for module, function in _MODULES.items():
        if module in features["measurements"]:
            with _timed(timings, module):
                measured |= function(objects)
    return measured


@lru_cache(maxsize=8)
def _feature_names(channels: tuple[str, ...], settings: str) -> tuple[str, ...]:
    """The columns measure_site writes for these channels and settings, in order (measured
    once on two small discs, so the names are cp_measure's own, never a hand-kept copy)."""
    yy, xx = np.mgrid[:48, :96]
    cells = np.zeros((48, 96), np.int32)
    nuclei = np.zeros((48, 96), np.int32)
    for label, cx in ((1, 24), (2, 72)):
        distance = np.hypot(yy - 24, xx - cx)
        cells[distance < 18] = label
        nuclei[distance < 8] = label
    rng = np.random.default_rng(0)
    images = {channel: rng.uniform(0.1, 0.9, cells.shape) for channel in channels}
    table = measure_site(nuclei, cells, images, json.loads(settings), names=False)
    return tuple(table.columns)


def feature_names(channels, params: dict | None = None) -> list[str]:
    """CellProfiler column names of the features stage for ``channels`` (see measure_site)."""
    features = FEATURES.merge(params)
    return list(_feature_names(tuple(channels), json.dumps(features, sort_keys=True)))


def measure_site(
    nuclei: np.ndarray,
    cells: np.ndarray,
    images: Mapping[str, np.ndarray],
    params: dict | None = None,
    scale_max: int = 65535,
    names: bool = True,
    timings: dict | None = None,
) -> pd.DataFrame:
    """One row per cell (label 1..n of ``nuclei`` / ``cells``), float32 CellProfiler features.

    ``images``: channel -> float image in [0, 1] (``site_images``); ``scale_max``: the raw
    pixel type's maximum, the grid Costes' threshold search steps on. Columns are always
    ``feature_names(images, params)``, whatever objects the site has. ``timings``: a dict to
    add each module's CPU seconds to.
    """
    features = FEATURES.merge(params)
    n = int(max(nuclei.max(initial=0), cells.max(initial=0)))
    measured: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # column -> (object ids, values)
    with warnings.catch_warnings():  # NaN are counted in the job log instead
        warnings.simplefilter("ignore", RuntimeWarning)
        site = prepare_site(images, features, scale_max, timings)
        for name, labels in object_sets(nuclei, cells, features["shrink_nuclei"]).items():
            clean, ids = sanitize_masks(labels)
            if ids.size == 0:
                continue
            # One label type whatever the masks were stored as (uint16 on disk, int32 from
            # segmentation and feature_names' discs): each compiled function then compiles
            # once per process, not once per type (seconds each, in every fresh environment).
            clean = clean.astype(np.int32, copy=False)
            for key, values in measure_objects(clean, site, features, timings).items():
                measured[f"{name}_{key}"] = ids, np.asarray(values, np.float64)
        columns = feature_names(images, features) if names else list(measured)
        # One row per column: the layout of the single float32 block pandas keeps for the
        # table (a dict of ~2,800 columns cost pandas more per site than small sites take to
        # measure).
        values = np.full((len(columns), n), np.nan, np.float32)
        for row, column in enumerate(columns):
            if column in measured:
                ids, measured_values = measured[column]
                values[row, ids - 1] = measured_values
    return pd.DataFrame(values.T, index=pd.RangeIndex(n), columns=columns, copy=False)
