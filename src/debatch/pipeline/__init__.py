"""The workflow's Python, apart from Snakemake: torch-free and Snakemake-free, so it is
unit-tested directly (tests/test_pipeline.py).

- ``checks``: checks the config at start-up (blocks, channels, methods; ``ConfigError``);
- ``plates``: reads the plate sheet and finds each plate's files (``load_plates``);
- ``params``: slices the config into each rule's params (``train_params``, ...);
- ``sources``: frozen models and a reference run's profiles (``frozen_models``, ...).

workflow/rules/common.smk binds it to the loaded config and turns a ConfigError into Snakemake's
one-line start-up failure.
"""

from .checks import ConfigError

__all__ = ["ConfigError"]
