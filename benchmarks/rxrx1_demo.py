"""`make rxrx1-demo` timed from a fresh clone (issue 27: the RxRx1-shaped screen end to end with
the WILDS protocol, ERM, DeepNoise and the best ABRA recipe on one seed, within 30 min on 2
cores). The clone's virtual environment is built first (`make venv`) and timed apart: the goal
is the screen's, and a user runs it after `make demo` has built the environment. Then the
screen's generation and conversion to a plate sheet (make's
`resources/rxrx1_demo/sheet/plates.tsv`), then the workflow (`make rxrx1-demo`), with its
training jobs' share. Prints a markdown section."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

import figures
from clone import REPO, fresh_clone, timed_make
from end_to_end import rule_table

GOAL_MIN = 30
SHEET = "resources/rxrx1_demo/sheet/plates.tsv"  # the Makefile's $(RXRX1_DEMO) default
RXRX1_CONFIG = yaml.safe_load((REPO / "config" / "rxrx1.yaml").read_text())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clone, commit, venv_s = fresh_clone(Path(tmp))
        screen_s = timed_make(clone, SHEET)
        workflow_s = timed_make(clone, "rxrx1-demo")
        jobs = rule_table(clone / RXRX1_CONFIG["results"])
    minutes = (screen_s + workflow_s) / 60
    figures.save(__file__, {"venv_s": venv_s, "screen_s": screen_s, "workflow_s": workflow_s})
    train = RXRX1_CONFIG["train"]
    print(f"## `make rxrx1-demo` from a fresh clone of {commit} (2 cores)\n")
    print("| part | s |")
    print("|---|---:|")
    print(f"| virtual environment (make's, apart from the goal) | {venv_s:.0f} |")
    print(f"| the screen generated and converted to a plate sheet | {screen_s:.0f} |")
    print(f"| the workflow (Snakemake) | {workflow_s:.0f} |")
    print(
        f"| of which training jobs ({', '.join(train['methods'])}; seeds {train['seeds']}) | "
        f"{jobs.total_s.get('train', 0.0):.0f} |"
    )
    verdict = "met" if minutes <= GOAL_MIN else "NOT met"
    print(
        f"\nGoal (issue 27) `make rxrx1-demo` within {GOAL_MIN} min on 2 cores (screen and "
        f"workflow): {verdict} ({minutes:.1f} min)."
    )


if __name__ == "__main__":
    main()
