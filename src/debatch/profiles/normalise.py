"""Per-plate normalisation of well profiles against the plate's negative controls.

Subtracting the negcon centre and dividing by the negcon spread of each feature, plate by plate,
removes plate-level shifts while keeping treatment effects as distances from control
(pycytominer's ``normalize`` with ``mad_robustize`` or ``standardize``, per plate with the negcon
wells as ``samples``).

A feature whose negcon wells barely vary (a granularity scale that is 0 in most controls) gets a
spread near 0 and values in the hundreds of thousands, which then carry every distance and PCA.
As in pycytominer, ``mad_robustize`` divides by the robust SD plus ``mad_epsilon`` and leaves
such features to ``drop_outliers`` (``profiles.feature_select``), which every source goes through.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from debatch.core.stats import median_and_mad
from debatch.settings import (
    NEGCON,
    NORMALISATIONS,
    PLATE,
    PROFILES,
    ROLE,
    check_choice,
    feature_columns,
)

log = logging.getLogger(__name__)


def _say_flat_features(plate, spread: np.ndarray, n_controls: int) -> None:
    """Warn when many features do not vary over a plate's controls: with one or two negcon
    wells left (QC failed the rest) every feature does, and drop_outliers then removes them
    from the whole screen; the warning says which plate did it."""
    flat = int((spread == 0).sum())
    if flat > 0.1 * len(spread):
        log.warning(
            "plate %s: %d of %d features do not vary over its %d negcon well(s): they blow up "
            "and drop_outliers drops them from every plate (QC may have removed this plate's "
            "controls: see its QC log)",
            plate,
            flat,
            len(spread),
            n_controls,
        )


def normalise_plates(
    wells: pd.DataFrame,
    method: str = "mad_robustize",
    control_role: str = NEGCON,
    mad_epsilon: float = PROFILES.defaults["mad_epsilon"],
) -> pd.DataFrame:
    """Per plate: subtract the negcon centre and divide by the negcon spread of each feature
    (``mad_robustize``: robust SD + ``mad_epsilon``, as pycytominer; ``standardize``: SD, a
    constant feature left centred, as scikit-learn's scaler).

    NaN (CellProfiler features a well could not measure) are left out of the centre and spread.
    """
    check_choice("profiles.normalise", method, NORMALISATIONS)
    features = feature_columns(wells.columns)
    # filled in numpy and made a frame once: assigning a plate's rows through .loc goes column
    # by column, seconds for thousands of CellProfiler features
    values = wells[features].to_numpy(np.float64)
    normalised = values.astype(np.float32)
    is_control = (wells[ROLE] == control_role).to_numpy()
    for plate, positions in wells.groupby(PLATE).indices.items():
        controls = values[positions[is_control[positions]]]
        if len(controls) == 0:
            raise ValueError(f"plate {plate} has no {control_role} well to normalise against")
        with warnings.catch_warnings():  # a feature NaN in every negcon well stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            if method == "mad_robustize":
                centre, spread = median_and_mad(controls, axis=0, skip_nan=True)
                _say_flat_features(plate, spread, len(controls))
                spread = spread + mad_epsilon
            else:
                centre, spread = np.nanmean(controls, axis=0), np.nanstd(controls, axis=0)
                spread = np.where(spread > 0, spread, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):  # mad_epsilon 0: drop_outliers' job
            normalised[positions] = (values[positions] - centre) / spread
    frame = pd.DataFrame(normalised, index=wells.index, columns=features)
    # a float64 feature stays float64 (its values rounded to float32, as before); any other
    # feature (an integer count, say) becomes float32: normalised values are not counts
    wider = {c: d for c, d in wells[features].dtypes.items() if d.kind == "f" and d.itemsize > 4}
    frame = frame.astype(wider) if wider else frame
    return pd.concat([wells.drop(columns=features), frame], axis=1)[list(wells.columns)]
