"""Logging set-up for the workflow's scripts: one log file per job, plus stderr."""

from __future__ import annotations

import logging
import sys


def setup_logging(log_file: str | None) -> logging.Logger:
    """Send every debatch logger to the job's log file and to stderr, with timestamps."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return logging.getLogger("debatch")
