"""Profiles: cells -> wells -> corrected profiles of the whole screen.

- ``cells``: reads one plate's per-cell profiles of a source (``cell_profiles``);
- ``aggregate``: aggregates cells into wells (``aggregate_wells``);
- ``normalise``: normalises each plate against its negative controls (``normalise_plates``);
- ``wells``: builds a source's normalised well profiles, plate by plate (``well_profiles``);
- ``feature_select``: selects features (``select_features``);
- ``correct``: corrects batch effects across plates (``correct``, ``CORRECTORS``);
- ``consensus``: aggregates wells into one profile per treatment (``consensus``);
- ``h5ad``: writes profiles as AnnData (``write_h5ad``).

Column names follow pycytominer: ``Metadata_`` columns are metadata, every other column is a
feature. Settings: ``profiles`` (debatch.settings.PROFILES).
"""

__all__ = [
    "cells",
    "aggregate",
    "normalise",
    "wells",
    "feature_select",
    "correct",
    "consensus",
    "h5ad",
]
