"""The demo screen's blocks: the generated plates (``demo.params``) and their technical batch
effects (``demo.params.batch``; debatch.demo)."""

from __future__ import annotations

from .block import Block, above, at_least, between


def _demo_fits_the_plate(demo: dict, name: str) -> None:
    if not demo["cell_radius"] > demo["nucleus_radius"]:
        raise ValueError(
            f"{name}.cell_radius ({demo['cell_radius']}) must exceed "
            f"nucleus_radius ({demo['nucleus_radius']})"
        )
    if not demo["n_treatments"] * demo["replicates"] < demo["rows"] * demo["cols"]:
        raise ValueError(
            f"{name}: n_treatments x replicates ({demo['n_treatments']} x "
            f"{demo['replicates']}) must leave at least one DMSO well of "
            f"rows x cols ({demo['rows']} x {demo['cols']})"
        )
    if not demo["n_inactive"] <= demo["n_treatments"]:
        raise ValueError(
            f"{name}.n_inactive ({demo['n_inactive']}) must be at most "
            f"n_treatments ({demo['n_treatments']})"
        )


DEMO_BATCH = Block(
    "demo.params.batch",
    {
        "gain": 0.25,
        "offset": 0.02,
        "vignetting": 0.3,
        "blur": 0.8,
        "background": 0.03,
        "noise": 0.02,
        "density": 0.2,
        "gamma": 0.15,
        "crosstalk": 0.1,
        "illumination_shape": 0.3,
        "psf": 0.3,
        "size": 0.15,
    },
    checks=[
        at_least(
            0,
            "gain",
            "offset",
            "vignetting",
            "blur",
            "background",
            "noise",
            "density",
            "gamma",
            "crosstalk",
            "illumination_shape",
            "psf",
            "size",
        )
    ],
)

DEMO = Block(
    "demo.params",
    {
        "seed": 0,
        "rows": 4,
        "cols": 6,
        "sites": 2,
        "image_size": 256,
        "cells_per_site": 40,
        "nucleus_radius": 6.0,
        "cell_radius": 13.0,
        "n_treatments": 8,
        "replicates": 2,
        "n_inactive": 3,
        "effect_size": 0.35,
        "cell_heterogeneity": 0.3,
        "confluence": 0.0,
        "blurred_sites": 0.0,
        "defocus": 2.0,
        "batch": DEMO_BATCH,
    },
    checks=[
        between(1, 16, "rows"),
        between(1, 24, "cols"),
        at_least(1, "sites", "replicates"),
        at_least(32, "image_size"),
        at_least(0, "cells_per_site", "n_treatments", "n_inactive", "cell_heterogeneity"),
        above(0, "nucleus_radius"),
        between(0, 1, "effect_size", open_high=True),
        between(0, 1, "confluence", "blurred_sites"),
        at_least(0, "defocus"),
        _demo_fits_the_plate,
    ],
)
