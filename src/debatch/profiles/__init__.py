"""Profiles: cells -> wells (aggregate), per-plate normalisation against negcon (normalise),
feature selection (feature_select), both per plate (wells), post-hoc batch correction (correct)
and per-treatment consensus.

Column names follow pycytominer: ``Metadata_`` columns are metadata, every other column is a
feature. Settings: ``profiles`` (debatch.settings.PROFILES).
"""
