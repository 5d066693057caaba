"""The demo screen's blocks: the generated plates (``demo.params``) and their technical batch
effects (``demo.params.batch``; debatch.demo), and the RxRx1-shaped screen's settings
(``RXRX1_SCREEN``: debatch.demo.rxrx1, a command, so not a Snakemake config block; each key's
meaning in config/rxrx1_screen.yaml)."""

from __future__ import annotations

from .block import Block, above, at_least, between, ordered


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


def _rxrx1_fits_a_plate(screen: dict, name: str) -> None:
    if not screen["cell_types"] or len(set(screen["cell_types"])) < len(screen["cell_types"]):
        raise ValueError(f"{name}.cell_types must be distinct names, not {screen['cell_types']}")
    for cell_type in screen["cell_types"]:
        if not cell_type.isalnum():
            raise ValueError(f"{name}.cell_types: {cell_type!r} is not letters and digits only")
    held = screen["test_experiments"] + screen["validation_experiments"]
    if not held < screen["experiments"]:
        raise ValueError(
            f"{name}: test_experiments + validation_experiments ({held}) must leave a training "
            f"experiment of experiments ({screen['experiments']}) per cell type"
        )
    if not screen["inactive"] + screen["close_pairs"] <= screen["sirnas"]:
        raise ValueError(f"{name}: inactive + close_pairs must be at most sirnas")
    per_plate = -(-screen["sirnas"] // screen["plates"]) * screen["replicates"]
    wells = per_plate + screen["positive_controls"] * screen["poscon_wells"]
    wells += screen["negcon_wells"]
    if wells > RXRX1_WELLS:
        raise ValueError(
            f"{name}: {wells} wells per plate; RxRx1's plates use {RXRX1_WELLS} (B02..O23)"
        )


RXRX1_WELLS = 14 * 22  # RxRx1's 384-well plates leave the outer wells out: B02..O23

# debatch.demo.rxrx1's screen: defaults here, each key's meaning in config/rxrx1_screen.yaml
RXRX1_SCREEN = Block(
    "rxrx1_screen",
    {
        "seed": 0,
        "cell_types": ["HEPG2", "HUVEC", "U2OS"],
        "experiments": 4,
        "test_experiments": 1,
        "validation_experiments": 1,
        "plates": 1,
        "sirnas": 56,
        "inactive": 6,
        "close_pairs": 8,
        "knobs_per_sirna": 2,
        "effect_size": 0.2,
        "cell_type_dependence": 0.5,
        "positive_controls": 2,
        "poscon_effect": 0.5,
        "poscon_wells": 2,
        "negcon_wells": 8,
        "replicates": 1,
        "sites": 2,
        "image_size": 128,
        "cells_per_site": 16.0,
        "nucleus_radius": 5.0,
        "cell_radius": 10.0,
        "cell_heterogeneity": 0.3,
        "cell_type_spread": 0.2,
        "brightness": 1.2,
        "batch": DEMO_BATCH,
    },
    checks=[
        at_least(1, "experiments", "plates", "sirnas", "replicates", "sites", "poscon_wells"),
        at_least(1, "negcon_wells", "knobs_per_sirna"),
        at_least(0, "test_experiments", "validation_experiments", "inactive", "close_pairs"),
        at_least(0, "positive_controls", "cell_type_dependence", "cell_type_spread"),
        at_least(0, "cell_heterogeneity", "effect_size", "poscon_effect"),
        between(1, 8, "knobs_per_sirna"),
        at_least(32, "image_size"),
        above(0, "cells_per_site", "nucleus_radius", "brightness"),
        ordered("nucleus_radius", "cell_radius"),
        _rxrx1_fits_a_plate,
    ],
)
