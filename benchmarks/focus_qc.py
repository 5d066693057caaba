"""Focus QC against phenotypes: does it catch defocused sites without failing treatments that
change nucleus size or cell density?

    .venv/bin/python benchmarks/focus_qc.py        # ~1 min on 2 cores

Sites of debatch.demo.focus (the demo renderer; config/config.yaml's demo parameters, four
batches as four plates; per plate DMSO x4 and six treatments: nuclei x1.35 / x1.7 / x2.5 / x0.65 in
area, cell density x1.6 / x0.5), one in eight of each defocused by demo.params.defocus px,
measured and segmented as the segment stage does (debatch.evaluate.focus), then flagged by
debatch.segment.qc.flag_sites with each focus measure, with and without the nucleus-size /
density adjustment. Prints, per treatment, in-focus sites failed (false fails) and defocused
sites caught (sensitivity). Goal: 0 false fails, defocused sites still caught.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from debatch.evaluate.focus import focus_rates, focus_table
from debatch.segment.qc import failure_concentration, flag_sites

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
BATCHES = ["batch1", "batch2", "batch3", "batch4"]
SITES, BLURRED = 8, 0.125


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
            )
    print()
    chosen = (CONFIG["qc"]["focus_measure"], CONFIG["qc"]["focus_adjust"])
    for (measure, adjust), (false, caught, defocused, warnings) in totals.items():
        name = f"{measure}, {'adjusted' if adjust else 'plate median'}"
        mark = " (the defaults)" if (measure, adjust) == chosen else ""
        print(
            f"- {name}{mark}: {false} false fails, {caught} of {defocused} defocused sites "
            f"caught ({caught / defocused:.0%}); concentration warnings: {len(warnings)}"
        )
    false, caught, defocused, _ = totals[chosen]
    met = "met" if false == 0 and caught else "NOT met"
    print(
        f"\nGoal 0 false fails on in-focus sites, defocused sites still caught: {false} false "
        f"fails, {caught / defocused:.0%} caught -> {met}."
    )


if __name__ == "__main__":
    main()
