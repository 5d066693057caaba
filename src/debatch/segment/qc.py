"""Image quality control per site: focus, saturation and cell count, and which sites fail.

The measures come from ``debatch.segment.quality`` (the segmentation job takes them on the
raw pixels it reads anyway, with CellProfiler's MeasureImageQuality definitions), and one
from segmentation itself:

- ``Count_Specks``: bright objects left out as specks (a few bright pixels
  without a nucleus's body; the propagate method counts them, cellpose none); a site made
  mostly of them fails (``max_speck_share``).

A constant (e.g. blank) channel fails its site (its ``ImageQuality_StdIntensity`` is 0); so does
a channel whose mean is more than ``max_scale_ratio`` times off the plate's median for that
channel, the signature of a site exported at another bit depth (8-bit values in a 16-bit file
are ~256x dimmer).

Focus is judged on ``focus_measure`` of the nuclei channel (edge sharpness by default, on a log
scale; or CellProfiler's slope). Both still move with nucleus size (a bigger nucleus is a
flatter dome: softer edges, more low-frequency power) and the slope with density, so the test
is relative and adjusted: per plate, a robust fit (Huber, then bisquare) on log object area
at half maximum and log cell count removes what size and density explain, and a site fails
when its remainder lies more than ``focus_mad`` robust SDs below zero. Without the adjustment
(``focus_adjust: false``) or with the slope, a compound that enlarges nuclei fails as "out of
focus", and QC deletes its phenotype (docs/segmentation.md, from benchmarks/focus_qc.py).
``failure_concentration`` says when failures still pile up in one treatment;
``fault_warnings`` names the sites whose data is wrong (a blank channel, another bit depth,
specks): both are the report's QC warnings. Failed sites stay in every table, flagged; the
crops stage leaves their cells out (the crops table is the index of what is analysed), and
counts are logged.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from debatch.core.stats import MAD_SCALE
from debatch.settings import (
    FOCUS,
    HALF_MAXIMUM_AREA,
    MEAN_INTENSITY,
    MIN_SPECKS,
    NEGCON,
    PLATE,
    QC,
    QC_FAILED,
    QC_PASS,
    ROLE,
    SATURATION,
    SHARPNESS,
    SITE,
    SITE_CELLS,
    SITE_SPECKS,
    STD_INTENSITY,
    TREATMENT,
    WELL,
)

log = logging.getLogger(__name__)

# Floor of the robust SD of the focus deviations (log sharpness, or slope units): on a plate of
# near-identical sites (or very few) the MAD can be ~0 and would fail sites over differences
# no one could see.
MIN_FOCUS_SPREAD = 0.05
FOCUS_MEASURES = {"edge_sharpness": SHARPNESS, "power_log_log_slope": FOCUS}
# what the focus test judged: robust SDs from what the plate predicts (NaN: not judged)
FOCUS_DEVIATION = "QC_FocusDeviation"
COUNT = SITE_CELLS
_MIN_FIT_SITES = 8  # fewer sites with cells on a plate: focus judged against the plain median
_HUBER = 1.345  # Huber's tuning constant (95 % efficiency on Gaussian residuals)
_BISQUARE = 4.685  # Tukey's bisquare tuning constant (95 % efficiency on Gaussian residuals)
# QC reasons that say the data, not the biology, is wrong (first word of a reason -> meaning):
# the report names every site that has them. A scale fault's meaning is completed from its
# ratios (_scale_meaning).
_FAULTS = {
    "constant": "a blank (constant) channel",
    "scale": "a channel on another intensity scale than the plate's",
    "specks": "mostly specks, not cells (bright objects of a few pixels without a nucleus's body)",
}
# a channel this many x off the plate (128-512, around 2^8) is another bit depth's data
_BIT_DEPTH_FOLD = (128.0, 512.0)


def _deleted_residuals(y: np.ndarray, x: np.ndarray, iterations: int = 30) -> np.ndarray:
    """Deleted residuals of a robust regression of y on x (columns; an intercept is x's first),
    fitted by iteratively reweighted least squares, Huber's weights first, then Tukey's
    bisquare from that start: defocused sites (a quarter of a plate, say) get no weight
    instead of pulling the fit down towards them. Each site's residual is divided by 1 - its
    leverage, i.e. measured against the fit the other sites would give (a defocused site is
    often also the one with the biggest, blurred nuclei and the fewest cells, which would
    otherwise let the fit explain it away)."""
    weights = np.ones(len(y))
    for step in range(iterations):
        root = np.sqrt(weights)[:, None]
        coefficients = np.linalg.lstsq(x * root, y * root[:, 0], rcond=None)[0]
        residual = y - x @ coefficients
        scale = max(MAD_SCALE * float(np.median(np.abs(residual))), 1e-12)
        if step < iterations // 2:
            weights = np.minimum(1.0, _HUBER * scale / np.maximum(np.abs(residual), 1e-12))
        else:
            weights = np.clip(1 - (residual / (_BISQUARE * scale)) ** 2, 0, None) ** 2
    inverse = np.linalg.pinv((x * weights[:, None]).T @ x)
    leverage = weights * np.einsum("ij,jk,ik->i", x, inverse, x)
    return residual / np.maximum(1.0 - leverage, 1e-3)


def focus_deviation(sites: pd.DataFrame, measure: str, size: str, adjust: bool = True) -> pd.Series:
    """Per site, focus (column ``measure``) minus what its plate predicts: the plate median, or
    (``adjust``) a robust fit on log object size (column ``size``) and log cell count, where
    the plate has enough sites with cells to fit (others get the plate median). Sites without
    cells are not judged (NaN): their "focus" is that of noise, and the cell-count test fails
    them."""
    plates = sites[PLATE] if PLATE in sites else pd.Series("", index=sites.index)
    focus = sites[measure].astype(float).where(sites[COUNT] > 0)
    deviation = focus - focus.groupby(plates).transform("median")
    if not adjust or size not in sites:  # a table without sizes: the plate median
        return deviation
    for _, plate in sites.groupby(plates):
        usable = plate[np.isfinite(plate[measure]) & (plate[COUNT] > 0) & (plate[size] > 0)]
        if len(usable) < _MIN_FIT_SITES:
            continue
        x = np.column_stack(
            [
                np.ones(len(usable)),
                np.log(usable[size].to_numpy(float)),
                np.log(usable[COUNT].to_numpy(float)),
            ]
        )
        deviation[usable.index] = _deleted_residuals(usable[measure].to_numpy(float), x)
    return deviation


def _channel_faults(sites: pd.DataFrame, plates: pd.Series, max_ratio: float | None) -> pd.Series:
    """Per site, the channels that are constant or on another intensity scale than the plate's
    ("constant AGP;scale Mito x0.004"), empty when none (tables without these measures: none)."""
    faults = {index: [] for index in sites.index}
    for column in [c for c in sites if c.startswith(STD_INTENSITY + "_")]:
        channel = column.removeprefix(STD_INTENSITY + "_")
        mean = sites[f"{MEAN_INTENSITY}_{channel}"]
        ratio = mean / mean.groupby(plates).transform("median")
        for index in sites.index[sites[column] == 0]:
            faults[index].append(f"constant {channel}")
        if max_ratio is not None:
            off = (sites[column] > 0) & ((ratio > max_ratio) | (ratio < 1 / max_ratio))
            for index in sites.index[off]:
                faults[index].append(f"scale {channel} x{ratio[index]:.3g}")
    return pd.Series({index: ";".join(found) for index, found in faults.items()})


def _speck_faults(sites: pd.DataFrame, max_share: float | None) -> pd.Series:
    """Per site, "specks 6 of 6 objects" where specks are more than ``max_share`` of its
    objects (specks + cells) and at least MIN_SPECKS, else empty (tables without the count:
    none)."""
    faults = pd.Series("", index=sites.index)
    if max_share is None or SITE_SPECKS not in sites:
        return faults
    specks = sites[SITE_SPECKS]
    objects = specks + sites[COUNT]
    bad = (specks > max_share * objects) & (specks >= MIN_SPECKS)
    faults[bad] = [f"specks {s} of {o} objects" for s, o in zip(specks[bad], objects[bad])]
    return faults


def flag_sites(sites: pd.DataFrame, focus_channel: str, params: dict | None = None) -> pd.DataFrame:
    """The per-site table with ``QC_Pass`` and ``QC_Failed`` (the failed tests, ";"-separated).

    Focus is judged on ``focus_channel`` (the nuclei channel: sharp, present in every cell)
    within each plate; saturation on every channel; cell counts against absolute bounds.
    """
    qc = QC.merge(params)
    measure = FOCUS_MEASURES[qc["focus_measure"]]
    column = f"{measure}_{focus_channel}"
    if column not in sites:
        raise ValueError(
            f"QC table has no {column}; measured channels: "
            f"{[c.removeprefix(measure + '_') for c in sites if c.startswith(measure)]}"
        )
    failed = pd.DataFrame(False, index=sites.index, columns=["focus", "saturation", "cell count"])
    focus = sites[column]
    plates = sites[PLATE] if PLATE in sites else pd.Series("", index=sites.index)
    deviation = pd.Series(np.nan, index=sites.index)
    if qc["focus_mad"] is not None:
        scaled = sites.assign(**{column: np.log(focus) if measure == SHARPNESS else focus})
        size = f"{HALF_MAXIMUM_AREA}_{focus_channel}"
        offset = focus_deviation(scaled, column, size, qc["focus_adjust"])
        spread = offset.abs().groupby(plates).transform("median") * MAD_SCALE
        deviation = offset / spread.clip(lower=MIN_FOCUS_SPREAD)
        failed["focus"] |= deviation < -qc["focus_mad"]
    if qc["min_focus"] is not None:
        failed["focus"] |= focus < qc["min_focus"]
    if qc["max_saturated_percent"] is not None:
        saturation = sites[[c for c in sites if c.startswith(SATURATION + "_")]]
        failed["saturation"] = (saturation > qc["max_saturated_percent"]).any(axis=1)
    failed["cell count"] = sites[COUNT] < qc["min_cells"]
    if qc["max_cells"] is not None:
        failed["cell count"] |= sites[COUNT] > qc["max_cells"]
    channels = _channel_faults(sites, plates, qc["max_scale_ratio"])
    specks = _speck_faults(sites, qc["max_speck_share"])
    flagged = sites.copy()
    flagged[FOCUS_DEVIATION] = deviation
    flagged[QC_PASS] = ~failed.any(axis=1) & (channels == "") & (specks == "")
    flagged[QC_FAILED] = [
        ";".join([*(name for name, bad in row.items() if bad), *filter(None, extra)])
        for (_, row), extra in zip(failed.iterrows(), zip(channels, specks))
    ]
    return flagged


# QC_Failed's text is the one record of why a site failed: the qc table is written to
# qc/{plate}.parquet and the report reads it back from there, so the kind of each reason is
# parsed from its first word (every reason starts with it) rather than kept in more columns.
def _kind(reason: str) -> str:
    """A QC reason without its channel and numbers: "scale DNA x0.0039" -> "scale"."""
    first = reason.split(" ")[0]
    return first if first in _FAULTS else reason


def _unmeasured(reason: str) -> str:
    """A QC reason without its numbers: "scale DNA x0.0039" -> "scale DNA"."""
    return "specks" if reason.startswith("specks") else reason.split(" x")[0]


def _scale_meaning(ratios: list[float]) -> str:
    """What channels off the plate's intensity scale by ``ratios`` (site mean / plate median)
    are: "256x dimmer than the plate's median: 8-bit data in 16-bit files?"."""
    folds = [max(r, 1 / r) for r in ratios]
    low, high = min(folds), max(folds)
    size = f"{low:.3g}x" if f"{low:.3g}" == f"{high:.3g}" else f"{low:.3g}x to {high:.3g}x"
    direction = (
        "dimmer" if max(ratios) < 1 else "brighter" if min(ratios) > 1 else "dimmer or brighter"
    )
    cause = "another exposure, gain or bit depth"
    if all(_BIT_DEPTH_FOLD[0] <= f <= _BIT_DEPTH_FOLD[1] for f in folds):
        cause = {
            "dimmer": "8-bit data in 16-bit files?",
            "brighter": "16-bit data beside a plate of 8-bit data?",
        }.get(direction, "a mix of 8-bit and 16-bit data?")
    return f"{size} {direction} than the plate's median: {cause}"


def failure_counts(flagged: pd.DataFrame) -> pd.Series:
    """Failed sites per test (a site failing two tests counts in both), most frequent first;
    channel faults without their channel ("scale DNA x0.0039" counts as "scale")."""
    reasons = [text.split(";") for text in flagged.loc[~flagged[QC_PASS], QC_FAILED]]
    kinds = pd.Series([kind for found in reasons for kind in {_kind(r) for r in found}])
    return kinds.value_counts().astype(int)


def summary(flagged: pd.DataFrame) -> str:
    """One log line: how many sites failed, by which test (sites per test; the channels of
    channel faults), and how many cells they hold."""
    bad = flagged[~flagged[QC_PASS]]
    reasons = [text.split(";") for text in bad[QC_FAILED]]
    parts = []
    for kind, count in failure_counts(flagged).items():
        channels = sorted(
            {r.split(" ")[1] for found in reasons for r in found if _kind(r) == kind}
            if kind in ("scale", "constant")
            else []
        )
        detail = f" ({', '.join(channels)})" if channels else ""
        parts.append(f"{kind}{detail}: {count} site{'s' * (count != 1)}")
    return (
        f"QC: {len(bad)} of {len(flagged)} sites failed ({'; '.join(parts) or 'none'}); they "
        f"hold {int(bad[COUNT].sum())} of {int(flagged[COUNT].sum())} cells, which get no crops"
    )


def fault_warnings(flagged: pd.DataFrame, shown: int = 5) -> list[str]:
    """One warning per plate and kind of data fault (_FAULTS: a blank channel, another bit
    depth, specks) naming its sites (the first ``shown``) and their reasons: the data is wrong,
    not the biology, so the report says so rather than an INFO line in a job log."""
    flagged = flagged.reset_index(drop=True)  # plates' tables concatenated repeat row labels
    plates = flagged[PLATE] if PLATE in flagged else pd.Series("", index=flagged.index)
    warnings = []
    for plate, sites in flagged[~flagged[QC_PASS]].groupby(plates, sort=True):
        for kind, meaning in _FAULTS.items():
            found = {
                (row[WELL], row[SITE]): [r for r in row[QC_FAILED].split(";") if _kind(r) == kind]
                for _, row in sites.iterrows()
            }
            named = [
                f"well {well} site {site} ({', '.join(reasons)})"
                for (well, site), reasons in found.items()
                if reasons
            ]
            if kind == "scale" and named:
                ratios = [float(r.rsplit(" x", 1)[1]) for rs in found.values() for r in rs]
                meaning = f"{meaning} ({_scale_meaning(ratios)})"
            if named:
                more = f" and {len(named) - shown} more" if len(named) > shown else ""
                warnings.append(
                    f"plate {plate}: {len(named)} site(s) failed QC for {meaning}: "
                    f"{'; '.join(named[:shown])}{more}; their cells are not analysed"
                )
    return warnings


def qc_warnings(flagged: pd.DataFrame, params: dict | None = None) -> list[str]:
    """The report's QC warnings: sites with wrong data (fault_warnings), then treatments whose
    sites fail QC far more often than others (failure_concentration)."""
    return fault_warnings(flagged) + failure_concentration(flagged, params)


def failure_concentration(flagged: pd.DataFrame, params: dict | None = None) -> list[str]:
    """Warnings, one per treatment, when QC failures concentrate in it: it holds at least
    ``concentration_share`` of the failed sites (and 3 or more) and fails at least twice as
    often as the other sites. QC that fails a phenotype biases every profile built after it."""
    qc = QC.merge(params)
    if qc["concentration_share"] is None or TREATMENT not in flagged:
        return []
    failed = ~flagged[QC_PASS].to_numpy(bool)
    counts = pd.DataFrame({"failed": failed, TREATMENT: flagged[TREATMENT].to_numpy()})
    per_treatment = counts.groupby(TREATMENT)["failed"].agg(["sum", "size"])
    total_failed, total = int(failed.sum()), len(failed)
    warnings = []
    for treatment, (n_failed, n_sites) in per_treatment.iterrows():
        others = total - n_sites
        other_rate = (total_failed - n_failed) / others if others else 0.0
        if (
            n_failed >= 3
            and n_failed >= qc["concentration_share"] * total_failed
            and n_failed / n_sites >= 2 * other_rate
        ):
            warnings.append(
                f"QC failed {n_failed} of the {n_sites} sites of treatment {treatment} "
                f"({n_failed / total_failed:.0%} of all failed sites; other sites fail "
                f"{other_rate:.0%}): QC may be removing this treatment's phenotype"
            )
    return warnings


def check_negcon(flagged: pd.DataFrame, plate: str, params: dict | None = None) -> str | None:
    """Known right after QC, not after training: a plate whose negcon wells keep no cell
    cannot be normalised. ``plate_without_negcon: fail`` raises naming the wells and why;
    ``drop`` returns the warning (the plate is then left out of every profile)."""
    qc = QC.merge(params)
    negcon = flagged[flagged[ROLE] == NEGCON] if ROLE in flagged else flagged.iloc[:0]
    kept = negcon[negcon[QC_PASS] & (negcon[COUNT] > 0)]
    if len(negcon) == 0 or len(kept):
        return None
    reasons = pd.Series(
        [_unmeasured(r) for text in negcon[QC_FAILED] for r in text.split(";") if r]
    ).value_counts()
    message = (
        f"plate {plate}: QC left no cell in its negcon wells {sorted(negcon[WELL].unique())} "
        f"({', '.join(f'{k} {v}' for k, v in reasons.items()) or 'no cells'}), so it cannot be "
        f"normalised"
    )
    if qc["plate_without_negcon"] == "fail":
        raise ValueError(
            message + "; relax the QC thresholds (config qc), or set "
            "qc.plate_without_negcon: drop to leave the plate out of the profiles"
        )
    return message + "; left out of the profiles (qc.plate_without_negcon: drop)"
