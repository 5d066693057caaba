"""Focus QC against phenotypes: does it catch defocused sites without failing treatments that
change nucleus size or cell density?

    .venv/bin/python benchmarks/focus_qc.py        # ~1 min on 2 cores

Sites of debatch.demo.focus_sites (the demo renderer; config/config.yaml's demo parameters, four
batches as four plates; per plate DMSO x4 and six treatments: nuclei x1.35 / x1.7 / x2.5 / x0.65 in
area, cell density x1.6 / x0.5), one in eight of each defocused by demo.params.defocus px,
measured and segmented as the segment stage does (debatch.validate.focus_qc), then flagged by
debatch.segment.qc.flag_sites with each focus measure, with and without the nucleus-size /
density adjustment. Prints, per treatment, in-focus sites failed (false fails) and defocused
sites caught (sensitivity); the robust SD of what each test's prediction leaves (the unit of
qc.focus_mad, floored at MIN_FOCUS_SPREAD); and the same with a quarter of each plate
defocused, beside the size adjustment as it was before issue 24 (the segmented nuclei's median
area, a Huber fit: benchmarks/previous.py). Goal: 0 false fails, defocused sites still caught.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from debatch.core.stats import MAD_SCALE
from debatch.segment.qc import (
    FOCUS_MEASURES,
    MIN_FOCUS_SPREAD,
    failure_concentration,
    flag_sites,
    focus_deviation,
)
from debatch.settings import HALF_MAXIMUM_AREA, PLATE, SHARPNESS
from debatch.validate.focus_qc import focus_rates, focus_table
from previous import BEFORE_ISSUE_24, qc_before_issue_24

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
BATCHES = ["batch1", "batch2", "batch3", "batch4"]
SITES, BLURRED, MANY_BLURRED = 8, 0.125, 0.25


def today(sites: pd.DataFrame, column: str, adjust: bool) -> pd.Series:
    """focus_deviation as flag_sites calls it (the size: the area at half maximum)."""
    return focus_deviation(sites, column, f"{HALF_MAXIMUM_AREA}_DNA", adjust)


def spread(table: pd.DataFrame, measure: str, adjust: bool, deviation=today) -> float:
    """Median over plates of the robust SD (MAD_SCALE x median |.|) of what the focus test's
    prediction leaves, before the MIN_FOCUS_SPREAD floor flag_sites puts under it."""
    column = f"{FOCUS_MEASURES[measure]}_DNA"
    values = np.log(table[column]) if FOCUS_MEASURES[measure] == SHARPNESS else table[column]
    offset = deviation(table.assign(**{column: values}), column, adjust)
    return float(offset.abs().groupby(table[PLATE]).median().median() * MAD_SCALE)


def many_defocused(params: dict, segment: dict) -> None:
    """Edge sharpness with a quarter of each plate defocused: the plate median, today's
    adjustment and the one before issue 24, on the same sites."""
    table = focus_table(params, BATCHES, SITES, MANY_BLURRED, segment)
    before = qc_before_issue_24()
    print(
        f"\n### Focus QC with {MANY_BLURRED:.0%} of each plate's sites defocused\n\n"
        "Edge sharpness, the same demo plates and treatments.\n\n"
        "| focus test | robust SD left | false fails | defocused caught |\n|---|---:|---:|---:|"
    )
    settings = {**CONFIG["qc"], "focus_measure": "edge_sharpness"}
    for name, flag, deviation, adjust in (
        ("plate median", flag_sites, today, False),
        (
            "adjusted (the defaults: area at half maximum, Huber then bisquare fit)",
            flag_sites,
            today,
            True,
        ),
        (
            f"adjusted as before issue 24 (segmented nuclei's area, Huber fit; {BEFORE_ISSUE_24})",
            before.flag_sites,
            before.focus_deviation,
            True,
        ),
    ):
        rates = focus_rates(flag(table, "DNA", {**settings, "focus_adjust": adjust}))
        left = f"{spread(table, 'edge_sharpness', adjust, deviation):.3f}"
        print(
            f"| {name} | {left} | {int(rates['false fails'].sum())} | "
            f"{int(rates['caught'].sum())} of {int(rates['defocused'].sum())} |"
        )


def main() -> None:
    params = CONFIG["demo"]["params"]
    table = focus_table(params, BATCHES, SITES, BLURRED, CONFIG["segment"]["propagate"])
    print("## Focus QC against phenotypes\n")
    print(
        f"{len(BATCHES)} plates (demo batches) of {len(table) // len(BATCHES)} sites, "
        f"{BLURRED:.1%} of each treatment's sites defocused by {params['defocus']} px "
        f"(sigma); qc.focus_mad {CONFIG['qc']['focus_mad']}.\n"
    )
    print(
        "| focus measure | adjusted for nucleus size and density | treatment | in focus | "
        "false fails | defocused | caught |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    totals = {}
    for measure in ("power_log_log_slope", "edge_sharpness"):
        for adjust in (False, True):
            settings = {**CONFIG["qc"], "focus_measure": measure, "focus_adjust": adjust}
            flagged = flag_sites(table, "DNA", settings)
            left = spread(table, measure, adjust)
            rates = focus_rates(flagged)
            for row in rates.itertuples():
                print(
                    f"| {measure} | {'yes' if adjust else 'no'} | {row.Metadata_Treatment} | "
                    f"{row._2} | {row._3} | {row.defocused} | {row.caught} |"
                )
            totals[measure, adjust] = (
                int(rates["false fails"].sum()),
                int(rates["caught"].sum()),
                int(rates["defocused"].sum()),
                failure_concentration(flagged, settings),
                left,
            )
    print()
    chosen = (CONFIG["qc"]["focus_measure"], CONFIG["qc"]["focus_adjust"])
    for (measure, adjust), (false, caught, defocused, warnings, left) in totals.items():
        name = f"{measure}, {'adjusted' if adjust else 'plate median'}"
        mark = " (the defaults)" if (measure, adjust) == chosen else ""
        print(
            f"- {name}{mark}: {false} false fails, {caught} of {defocused} defocused sites "
            f"caught ({caught / defocused:.0%}); concentration warnings: {len(warnings)}; "
            f"robust SD left {left:.3f}"
        )
    settings = {**CONFIG["qc"], "focus_measure": "edge_sharpness", "focus_adjust": True}
    before = qc_before_issue_24()
    rates = focus_rates(before.flag_sites(table, "DNA", settings))
    left = spread(table, "edge_sharpness", True, before.focus_deviation)
    print(
        f"- edge_sharpness, adjusted as before issue 24 (segmented nuclei's area, Huber fit; "
        f"{BEFORE_ISSUE_24}): {int(rates['false fails'].sum())} false fails, "
        f"{int(rates['caught'].sum())} of {int(rates['defocused'].sum())} defocused sites caught; "
        f"robust SD left {left:.3f}"
    )
    print(
        f"\nA site fails when its focus lies more than qc.focus_mad x the robust SD left below "
        f"the prediction, the SD floored at {MIN_FOCUS_SPREAD} (log sharpness, or slope units)."
    )
    false, caught, defocused, *_ = totals[chosen]
    met = "met" if false == 0 and caught else "NOT met"
    print(
        f"\nGoal 0 false fails on in-focus sites, defocused sites still caught: {false} false "
        f"fails, {caught / defocused:.0%} caught -> {met}."
    )
    many_defocused(params, CONFIG["segment"]["propagate"])


if __name__ == "__main__":
    main()
