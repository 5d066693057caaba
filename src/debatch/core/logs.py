"""Logging set-up for the workflow's scripts: one log file per job, plus stderr."""

from __future__ import annotations

import logging
import sys

from debatch.core.io import WriteError


def setup_logging(log_file: str | None) -> logging.Logger:
    """Send every debatch logger to the job's log file and to stderr, with timestamps.

    Uncaught errors are logged too. Bad input (ValueError and subclasses, which the library
    raises with a message naming the file/well/key) and an output the disk would not take
    (WriteError: full, over quota, read-only) are reported as that one line, without a
    traceback; anything else keeps its traceback, since it is a bug to report.
    """
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        handlers=handlers,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logger = logging.getLogger("debatch")

    def report(kind, error, traceback):
        if issubclass(kind, (ValueError, WriteError)):
            logger.error("debatch error: %s", error)
        else:
            logger.error("unexpected error", exc_info=(kind, error, traceback))
        logging.shutdown()
        sys.exit(1)

    sys.excepthook = report
    return logger
