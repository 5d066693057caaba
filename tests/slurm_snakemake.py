"""``python -m snakemake`` for test_slurm.py, with the SLURM executor plugin's waits between
status checks at most the run's ``--seconds-between-status-checks``.

The plugin (2.8.0) adds 10 s to its wait after every check that finds no job finished, up to
180 s, whatever that setting says; on a cluster that spares the controller, but the tiny run's
jobs take seconds, so the test sat idle between them for over a minute in all. Only the
waiting differs: what is submitted, and how, is the plugin's own. The cap sets a private
attribute of the plugin's executor interface, so it is tied to the pinned plugin version.
"""

from importlib.metadata import version

from snakemake.cli import main
from snakemake_executor_plugin_slurm import Executor
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor

PLUGIN = "2.8.0"  # workflow/envs/requirements.txt's pin: check the cap still applies on a bump
if version("snakemake-executor-plugin-slurm") != PLUGIN:
    raise SystemExit(f"tests/slurm_snakemake.py was written for the SLURM plugin {PLUGIN}")


def _at_most_the_setting(executor: RemoteExecutor, seconds: float) -> None:
    setting = executor.workflow.remote_execution_settings.seconds_between_status_checks
    executor._next_seconds_between_status_checks = min(seconds, setting)


Executor.next_seconds_between_status_checks = property(
    RemoteExecutor.next_seconds_between_status_checks.fget, _at_most_the_setting
)

if __name__ == "__main__":
    main()
