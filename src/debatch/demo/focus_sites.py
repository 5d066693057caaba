"""Sites made to test focus QC: treatments that change nucleus size or cell density, in focus
or defocused, rendered by the demo's own renderer (debatch.demo.render) for one batch.

A focus test must catch the defocused sites of every treatment and fail none of the sharp
ones; the plain power-spectrum slope confuses big nuclei with blur (issue 13).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

from debatch.demo.batches import batch_effects, defocus, vignetting_field
from debatch.demo.design import KNOBS
from debatch.demo.render import render_site
from debatch.settings import DEMO

# treatment -> (knob multipliers, cell-density multiplier, sites relative to the others: a
# plate is mostly negative controls)
_FOCUS_TREATMENTS = {
    "DMSO": ({}, 1.0, 4),
    "nuclei x1.35": ({"nucleus_size": 1.35}, 1.0, 1),
    "nuclei x1.7": ({"nucleus_size": 1.7}, 1.0, 1),
    "nuclei x2.5": ({"nucleus_size": 2.5}, 1.0, 1),
    "nuclei x0.65": ({"nucleus_size": 0.65}, 1.0, 1),
    "density x1.6": ({}, 1.6, 1),
    "density x0.5": ({}, 0.5, 1),
}


def focus_sites(
    params: dict, batch: str, sites_per_treatment: int, blurred_share: float
) -> Iterator[tuple[str, bool, dict[str, np.ndarray]]]:
    """(treatment, defocused, uint16 image per channel) for every site: each treatment gets
    ``sites_per_treatment`` sites (DMSO four times as many), the first ``blurred_share`` of
    them defocused by the demo's ``defocus`` sigma."""
    demo = DEMO.merge(params)
    fx = batch_effects(batch, demo)
    vignette = vignetting_field(fx, demo["image_size"])
    for treatment, (knobs, density, weight) in _FOCUS_TREATMENTS.items():
        effect = np.array([knobs.get(knob, 1.0) for knob in KNOBS])
        site_params = {**demo, "cells_per_site": demo["cells_per_site"] * density}
        n_sites = sites_per_treatment * weight
        n_blurred = round(blurred_share * n_sites)
        for site in range(n_sites):
            rng = np.random.default_rng(
                [demo["seed"], zlib.crc32(batch.encode()), zlib.crc32(treatment.encode()), site]
            )
            blurred = site < n_blurred
            site_fx = defocus(fx, demo["defocus"]) if blurred else fx
            images = render_site(rng, site_params, site_fx, effect, vignette)[0]
            yield treatment, blurred, images
