"""The demo screen's biology: which compound does what, and where it sits on the plate.

Each plate shares one platemap of DMSO negative controls and compound treatments. A treatment
changes one or two phenotype "knobs" (nucleus size, a channel's brightness, mitochondrial
texture, cell shape) per cell with some cell-to-cell heterogeneity; ``n_inactive`` compounds do
nothing. Everything is drawn from the seed, so any process recomputes the same design.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from debatch.core.wells import well_name
from debatch.settings import DEMO

CHANNELS = ("DNA", "ER", "RNA", "AGP", "Mito")
GOLGI = "Golgi"  # a sixth stain the renderer paints on request (RxRx1's WGA; debatch.demo.rxrx1)
KNOBS = (
    "nucleus_size",
    "dna_intensity",
    "er_intensity",
    "rna_intensity",
    "mito_texture",
    "agp_intensity",
    "cell_elongation",
    "cell_size",
)
NEGCON = "DMSO"


def _treatment_names(n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"cpd{i:0{width}d}" for i in range(1, n + 1)]


def _design(demo: dict) -> tuple[pd.DataFrame, dict[str, str]]:
    """Treatment effects and mechanism of action (moa) labels, from the seed.

    Active compounds are grouped into moa classes of about two; a class shares its
    primary knob and direction (its moa name, e.g. "nucleus_size_up"), and each compound
    may change one further random knob, so same-moa compounds are similar but not equal.
    """
    rng = np.random.default_rng([demo["seed"], zlib.crc32(b"treatments")])
    names = _treatment_names(demo["n_treatments"])
    inactive = {names[i] for i in rng.choice(len(names), demo["n_inactive"], replace=False)}
    active = [names[i] for i in rng.permutation(len(names)) if names[i] not in inactive]
    n_classes = math.ceil(len(active) / 2)
    knob_order = rng.permutation(len(KNOBS))
    classes = []
    for c in range(n_classes):
        sign = int(rng.choice([-1, 1])) if c < len(KNOBS) else -classes[c - len(KNOBS)][1]
        classes.append((KNOBS[knob_order[c % len(KNOBS)]], sign))

    size = demo["effect_size"]
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
        rows.append(
            {
                "treatment": name,
                "active": name not in inactive,
                **dict.fromkeys(KNOBS, 1.0),
                **effects.get(name, {}),
            }
        )
        moa.setdefault(name, "inactive")
    return pd.DataFrame(rows), moa


def treatment_effects(params: dict) -> pd.DataFrame:
    """Ground truth per treatment (DMSO first): treatment, active, one multiplier per knob.

    Size knobs (nucleus_size, cell_size) multiply area; intensity knobs multiply the
    channel's brightness; mito_texture multiplies the number of mitochondrial puncta while
    dividing their brightness (texture changes, mean intensity does not); cell_elongation
    multiplies the cell's aspect ratio.
    """
    return _design(DEMO.merge(params))[0]


def plate_layout(params: dict) -> pd.DataFrame:
    """The platemap every plate shares: well, treatment, role (negcon|treatment), moa.

    Wells are assigned to treatments by a seeded shuffle, so the layout is the same on
    every plate and in every process; rows are in plate (row-major) order.
    """
    demo = DEMO.merge(params)
    wells = [well_name(r, c) for r in range(demo["rows"]) for c in range(demo["cols"])]
    treatments = [
        t for t in _treatment_names(demo["n_treatments"]) for _ in range(demo["replicates"])
    ]
    treatments += [NEGCON] * (len(wells) - len(treatments))
    rng = np.random.default_rng([demo["seed"], zlib.crc32(b"layout")])
    order = rng.permutation(len(wells))
    by_well = {wells[w]: treatments[k] for k, w in enumerate(order)}
    moa = _design(demo)[1]
    return pd.DataFrame(
        {
            "well": wells,
            "treatment": [by_well[w] for w in wells],
            "role": ["negcon" if by_well[w] == NEGCON else "treatment" for w in wells],
            "moa": [moa[by_well[w]] for w in wells],
        }
    )
