"""Threads inside a job: how many cores it may use, and a pool map with bounded read-ahead."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor


def usable_cores() -> int:
    """CPU cores this process may run on (Slurm/cgroup CPU sets included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def ordered_map(
    pool: ThreadPoolExecutor, function: Callable, items: Iterable, ahead: int
) -> Iterator:
    """``pool.map`` that keeps at most ``ahead`` results in flight, so a job reading sites holds
    a few of them in memory, not the plate."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
