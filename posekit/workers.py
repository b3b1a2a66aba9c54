"""Worker processes that never outlive the process that started them.

A pool worker of :mod:`concurrent.futures` keeps running when its parent is killed
(SIGKILL, or SIGTERM with Python's default handler): it goes on writing into the output
folder of a run that no longer exists. :func:`worker_pool` starts workers that die with
their parent: on Linux the kernel kills them (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), and on
every platform a watchdog thread in each worker exits when its parent process is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# How often a worker's watchdog checks that its parent is alive (seconds).
WATCHDOG_PERIOD_S = 0.5
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Make this process exit as soon as process ``parent_pid`` (its parent) is gone.

    Call it first thing in a child process. Exits at once if the parent died already.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl here: the watchdog below still applies
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True,
                     name="posekit-parent-watchdog").start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_PERIOD_S)
        if os.getppid() != parent_pid:  # reparented: the parent is gone
            os._exit(1)


def _init_child(parent_pid: int, initializer: Callable | None, initargs: tuple) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def worker_pool(workers: int, initializer: Callable | None = None,
                initargs: tuple[Any, ...] = ()) -> Iterator[Any]:
    """A spawned ``ProcessPoolExecutor`` of ``workers`` processes that die with this process.

    Processes are spawned, not forked (open3d's and torch's thread pools do not survive a
    fork). ``initializer(*initargs)`` runs in each worker after the parent watch is set up.
    On leaving the block (also on an error) pending jobs are cancelled and the workers end.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=int(workers), mp_context=mp.get_context("spawn"),
                               initializer=_init_child, initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["WATCHDOG_PERIOD_S", "die_with_parent", "worker_pool"]
