"""Python imports this module at start-up from any folder on PYTHONPATH: test_suite.py puts
this folder there for `make test`, so every Python process the suite starts (Snakemake, each
job's script, the pytest workers) appends its kind and its own CPU seconds to the file named by
``DEBATCH_CENSUS`` when it exits. A process killed outright (the fault tests' SIGKILLs) writes
nothing. Without ``DEBATCH_CENSUS`` it does nothing."""

import os
import sys

if os.environ.get("DEBATCH_CENSUS"):
    import atexit

    def _kind(argv: list[str]) -> str:
        """Snakemake run / dry run, a job by its rule script (Snakemake runs a copy named
        tmpXXXX.<script>.py), a pytest-xdist worker (``python -c``), the package of
        ``python -m`` (pytest), or the script's name."""
        program = argv[0] if argv else ""
        if program.endswith(os.path.join("snakemake", "__main__.py")):
            dry = any(arg in ("-n", "--dry-run", "--dryrun") for arg in argv)
            return "snakemake dry run" if dry else "snakemake run"
        name = os.path.basename(program)
        if name == "__main__.py":  # python -m package: the package's name
            return os.path.basename(os.path.dirname(program))
        if name.startswith("tmp") and name.count(".") >= 2:
            return "job: " + name.split(".", 1)[1]
        return "tests (pytest workers, python -c)" if program == "-c" else name or "other"

    def _record() -> None:
        times = os.times()
        with open(os.environ["DEBATCH_CENSUS"], "a") as census:
            census.write(f"{_kind(sys.argv)}\t{times.user + times.system:.3f}\n")

    atexit.register(_record)
