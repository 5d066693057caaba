"""Per-plate normalisation of well profiles against the plate's negative controls.

Subtracting the negcon centre and dividing by the negcon spread of each feature, plate by plate,
removes plate-level shifts while keeping treatment effects as distances from control
(pycytominer's ``normalize`` with ``mad_robustize`` or ``standardize``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from debatch.core.stats import median_and_mad
from debatch.settings import NEGCON, NORMALISATIONS, PLATE, ROLE, check_choice, feature_columns


def normalise_plates(
    wells: pd.DataFrame, method: str = "mad_robustize", control_role: str = NEGCON
) -> pd.DataFrame:
    """Per plate: subtract the negcon centre and divide by the negcon spread of each feature.

    Removes plate-level shifts while keeping treatment effects as distances from control.
    NaN (CellProfiler features a well could not measure) are left out of the centre and spread.
    """
    check_choice("profiles.normalise", method, NORMALISATIONS)
    features = feature_columns(wells.columns)
    out = wells.copy()
    for plate, rows in wells.groupby(PLATE).groups.items():
        controls = wells.loc[rows]
        controls = controls[controls[ROLE] == control_role][features].to_numpy(np.float64)
        if len(controls) == 0:
            raise ValueError(f"plate {plate} has no {control_role} well to normalise against")
        with warnings.catch_warnings():  # a feature NaN in every negcon well stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            if method == "mad_robustize":
                centre, spread = median_and_mad(controls, axis=0, skip_nan=True)
            else:
                centre, spread = np.nanmean(controls, axis=0), np.nanstd(controls, axis=0)
        spread = np.where(spread > 1e-8, spread, 1.0)  # a constant feature stays centred, not inf
        values = (wells.loc[rows, features].to_numpy(np.float64) - centre) / spread
        out.loc[rows, features] = values.astype(np.float32)
    return out
