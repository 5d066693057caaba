"""The workflow's Python, apart from Snakemake: the config and plate-sheet checks run at
start-up (checks, plates) and each rule's params (params). torch-free and Snakemake-free, so it
is unit-tested directly (tests/test_pipeline.py); workflow/rules/common.smk binds it to the
loaded config and turns a ConfigError into Snakemake's one-line start-up failure.
"""

from .checks import ConfigError

__all__ = ["ConfigError"]
