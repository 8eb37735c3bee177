"""The training worker's life is tied to the bot's: when the bot dies (kill -9, a crash, the
OOM killer), its worker ends within moments, in every phase, with one log line.

Without this the worker noticed only at its next write to the pipe (a `BrokenPipeError`
traceback), and while it read a large corpus, built the verbatim index or evaluated nothing
noticed at all: a restarted bot could start a second run beside the orphan.

Two ways in, whichever comes first:
- Linux: `prctl(PR_SET_PDEATHSIG, SIGUSR2)` makes the kernel signal the worker when its
  parent dies; the handler logs and exits. The kernel also sends it when the parent
  *thread* that spawned the worker exits (the bot spawns from a worker thread), while the
  bot lives on, so the handler first checks that the parent really is gone, and the signal
  is one nobody else sends (SIGTERM keeps its usual meaning). Python runs handlers between
  bytecodes of the main thread, so a long C call (a big sort) can delay it; hence also
- everywhere: a daemon thread waits on `multiprocessing.parent_process().sentinel`, which
  becomes ready when the parent is gone, and exits from there (torch and numpy release the
  GIL in their long kernels, so the thread gets to run).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.connection import wait
from types import FrameType

EXIT_PARENT_GONE = 3  # the worker's exit status when it ended because the bot died
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_DEATH_SIGNAL = signal.SIGUSR2
_exiting = threading.Lock()


def tie_to_parent() -> None:
    """Call first thing in the spawned worker."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not a multiprocessing child (a test calling run_job directly)
        return
    if sys.platform.startswith("linux"):
        signal.signal(PARENT_DEATH_SIGNAL, _on_parent_signal)
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0)
        if os.getppid() != parent.pid:  # it died before prctl: no signal will come
            parent_gone("the bot exited before its training worker started")
    sentinel = parent.sentinel
    threading.Thread(
        target=_watch, args=(sentinel,), name="parrot-worker-lifeline", daemon=True
    ).start()


def parent_gone(why: str) -> None:
    """Leave now, quietly: nobody is left to receive a result. `os._exit` skips cleanup
    that could block (joining threads, flushing a pipe nobody reads)."""
    if not _exiting.acquire(blocking=False):
        return  # the other way in is already exiting
    with_pid = f"[worker {os.getpid()}] {why}; stopping.\n"
    try:
        os.write(2, with_pid.encode())
    finally:
        os._exit(EXIT_PARENT_GONE)


def _watch(sentinel: int) -> None:
    wait([sentinel])
    parent_gone("the bot is gone")


def _on_parent_signal(signum: int, frame: FrameType | None) -> None:
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() == parent.pid:
        return  # only the thread that spawned us ended; the bot lives (see the docstring)
    parent_gone("the bot is gone")
