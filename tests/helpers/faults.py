"""Real faults for tests: make the process run out of file descriptors for a moment."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator


@contextlib.contextmanager
def no_file_descriptors_left() -> Iterator[None]:
    """Lower this process's open-file limit to 0, so every open() fails with EMFILE ("too
    many open files"), as under load, for root too (chmod 000 does not stop root). Files
    and connections already open stay usable; the limit is restored on exit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
