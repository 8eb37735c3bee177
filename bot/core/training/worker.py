"""The training worker: the code that runs in the spawned process, and the messages it sends.

The bot process never trains: `bot.core.training.manager.TrainingManager` starts one process per run
with the multiprocessing *spawn* context (a fresh interpreter: no inherited threads, locks
or CUDA state) and runs `worker_main` there. The worker

1. reads the server's corpus itself from the database (`iter_corpus_text`, newest text kept
   up to `max_corpus_chars`), so a large text never passes through the bot process;
2. trains (`models.train.train`) once per architecture (two for `auto`), reporting progress
   and checking the cancel flag from the `on_progress` callback;
3. measures the candidate(s) and the incumbent model on the *same* validation text (the last
   `val_fraction` of this corpus, as `train` splits it), so the registry can apply its
   activation rule on a fair comparison;
4. writes the winning checkpoint atomically and builds the verbatim-copy index beside it;
5. sends one final message (`WorkerFinished`, or `WorkerFailed` with a readable reason).

It never writes to the database: the bot process owns every status change, so a worker that
dies at any point (OOM, kill -9) leaves the database as it was and, at worst, an orphan file.

Messages are small frozen dataclasses sent over a one-way `multiprocessing` pipe.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from bot.core.checkpoints.files import checkpoint_filename
from bot.core.errors import ParrotError
from bot.core.generation.verbatim import VerbatimIndexError, build_index_file, index_path_for
from bot.core.logs import get_logger, install_redaction
from bot.core.storage.corpus_text import CorpusSnapshot, corpus_snapshot, iter_corpus_text
from bot.core.storage.db import make_engine
from bot.core.training.lifeline import parent_gone, tie_to_parent
from bot.core.training.progress import RunProgress
from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.config import TrainConfig, validation_chars
from models.device import resolve_device
from models.errors import ModelError, TrainingCancelled, is_out_of_memory
from models.train import evaluate, train
from models.units import LN2

log = get_logger(__name__)

WORKER_NICENESS = 10
PROGRESS_INTERVAL_SECONDS = 0.25  # at most this often over the pipe (plus every validation)


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class WorkerJob:
    """Everything the worker needs; pickled to the child process, so plain data only."""

    run_id: int
    server_id: int
    database_url: str
    mode: str  # "fine-tune" | "scratch" (already resolved: fine-tune always has an incumbent)
    archs: tuple[str, ...]  # one, or ("gru", "lstm") for auto
    train_settings: dict[str, Any]  # models.config.TrainConfig fields, except arch and budget
    minutes: float  # wall-clock budget for the whole run, split between the archs
    max_steps: int | None
    max_corpus_chars: int
    checkpoint_dir: str
    incumbent_path: str | None
    verbatim_span: int | None  # None: the guard is off (generation.max_verbatim_chars = 0)
    # The parent's index on a fine-tune: the new index is its union with this run's text,
    # so what the parent's weights may hold stays guarded (None on a root run).
    parent_index_path: str | None = None
    busy_timeout_ms: int = 5_000
    # What a root run fine-tunes from: the base model (None: from scratch, or from the
    # incumbent on an ordinary fine-tune).
    init_path: str | None = None


@dataclass(frozen=True)
class WorkerStarted:
    corpus_chars: int
    device: str


@dataclass(frozen=True)
class WorkerFinished:
    cancelled: bool
    checkpoint_path: str | None = None
    arch: str | None = None
    val_loss: float | None = None  # nats/char of the new model on the validation text
    incumbent_val_loss: float | None = None  # the active model on the same text
    param_count: int = 0
    chars_trained: int = 0
    steps: int = 0
    device: str = ""
    verbatim_index: bool = False
    notes: list[str] = field(default_factory=list)
    snapshot: CorpusSnapshot | None = None  # whose text this run read


@dataclass(frozen=True)
class WorkerFailed:
    reason: str


WorkerMessage = WorkerStarted | RunProgress | WorkerFinished | WorkerFailed


def worker_main(job: WorkerJob, conn: Connection, cancel: CancelFlag) -> None:
    """Entry point of the spawned process."""
    tie_to_parent()  # first: the worker must never outlive the bot, whatever it is doing
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what happens
    # to this run (it sets the cancel flag), so the worker must not die on SIGINT itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Training may use every core; the bot's event loop (gateway heartbeats, /generate)
    # must still get the CPU when it needs it, so the worker yields to it.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    logging.basicConfig(level=logging.INFO, format="[worker %(process)d] %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        install_redaction(handler)
    exit_code = 0
    try:
        conn.send(run_job(job, conn.send, cancel))
    except (BrokenPipeError, EOFError):
        parent_gone("the bot closed the pipe")  # nobody to report to: one line, no traceback
    except BaseException as error:  # the process is ending anyway: report, never hide
        exit_code = 1
        traceback.print_exc(file=sys.stderr)
        with contextlib.suppress(OSError, ValueError):
            conn.send(WorkerFailed(describe_failure(error)))
    finally:
        conn.close()
    if exit_code:
        sys.exit(exit_code)


def describe_failure(error: BaseException) -> str:
    """A one-line reason for a failed run, written for a server admin: at most
    `FAILURE_REASON_CHARS` characters, and no file paths (they say nothing to a member and
    reveal the host's layout; the log has the detail)."""
    if is_out_of_memory(error):
        return (
            "out of memory: the model or the corpus does not fit on this device "
            "(try a smaller model or a smaller max_corpus_chars)"
        )
    if isinstance(error, ParrotError | ModelError):
        reason = str(error)
    else:
        reason = f"the training worker crashed: {type(error).__name__}: {error!s}"
    first_line = (reason.splitlines() or [""])[0].rstrip(": ")
    return _ABSOLUTE_PATH.sub(lambda match: Path(match[0]).name, first_line)[:FAILURE_REASON_CHARS]


FAILURE_REASON_CHARS = 300
# An absolute POSIX or Windows path, up to whitespace, a quote or a colon-space.
_ABSOLUTE_PATH = re.compile(r"(?:[A-Za-z]:\\|/)[^\s'\"]*[^\s'\":,.)]")


def read_corpus(job: WorkerJob) -> tuple[str, CorpusSnapshot]:
    """The training text and the snapshot that says whose text it is, read in one
    transaction: SQLite's WAL read transactions and PostgreSQL's REPEATABLE READ both see
    one consistent state, so the snapshot lists exactly the rows the text came from."""
    # A plain (deferred) transaction: a long read must not hold SQLite's write lock.
    engine = make_engine(
        job.database_url, busy_timeout_ms=job.busy_timeout_ms, begin_immediate=False
    )
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as connection, Session(bind=connection) as session:
            text = "".join(iter_corpus_text(session, job.server_id, max_chars=job.max_corpus_chars))
            return text, corpus_snapshot(session, job.server_id)
    finally:
        engine.dispose()


def validation_text(text: str, val_fraction: float, max_chars: int) -> str:
    """The validation split exactly as `models.train` cuts it (the last `val_fraction`)."""
    return text[-validation_chars(len(text), val_fraction) :][: max_chars + 1]


def run_job(
    job: WorkerJob, send: Callable[[WorkerMessage], None], cancel: CancelFlag
) -> WorkerFinished:
    """Train, compare and save; returns the final message (also used in-process by tests)."""
    device = resolve_device(str(job.train_settings.get("device", "auto")))
    text, snapshot = read_corpus(job)
    send(WorkerStarted(corpus_chars=len(text), device=str(device)))

    incumbent = load_checkpoint(job.incumbent_path) if job.incumbent_path else None
    if job.init_path:
        init: Checkpoint | None = load_checkpoint(job.init_path)
    else:
        init = incumbent if job.mode == "fine-tune" else None
    minutes_each = job.minutes / len(job.archs)
    candidates: list[tuple[str, Checkpoint, int]] = []
    notes: list[str] = []
    base_config = TrainConfig(**job.train_settings)

    for phase, arch in enumerate(job.archs, start=1):
        config = TrainConfig(
            **{**job.train_settings, "arch": arch},
            max_minutes=minutes_each,
            max_steps=job.max_steps,
        )
        on_progress = _progress_reporter(send, cancel, arch, phase, len(job.archs))
        try:
            result = train(text, config, init=init, on_progress=on_progress)
        except TrainingCancelled:
            return WorkerFinished(cancelled=True, device=str(device))
        if result.cancelled:
            return WorkerFinished(cancelled=True, device=str(device))
        candidates.append((arch, result.checkpoint, result.steps))

    val_text = validation_text(text, base_config.val_fraction, base_config.max_eval_chars)
    device_name = str(device)
    scored = [
        (evaluate(ckpt, val_text, device=device_name).nats_per_char, arch, ckpt, steps)
        for arch, ckpt, steps in candidates
    ]
    scored.sort(key=lambda item: _sort_key(item[0]))
    val_loss, arch, best, steps = scored[0]
    if len(scored) > 1:
        notes.append(
            ", ".join(f"{a}: {v / LN2:.3f} bits/char" for v, a, _, _ in scored) + f"; kept {arch}"
        )
    incumbent_val = (
        evaluate(incumbent, val_text, device=device_name).nats_per_char if incumbent else None
    )

    path = Path(job.checkpoint_dir) / checkpoint_filename(job.run_id, arch)
    save_checkpoint(best, path)
    has_index = _build_verbatim_index(text, path, job)
    return WorkerFinished(
        cancelled=False,
        checkpoint_path=str(path),
        arch=arch,
        val_loss=_finite_or_none(val_loss),
        incumbent_val_loss=_finite_or_none(incumbent_val) if incumbent_val is not None else None,
        param_count=best.param_count,
        chars_trained=best.stats.chars_seen,
        steps=steps,
        device=device_name,
        verbatim_index=has_index,
        notes=notes,
        snapshot=snapshot,
    )


def _build_verbatim_index(text: str, checkpoint: Path, job: WorkerJob) -> bool:
    """Write the checkpoint's guard index, or fail the run: the guard fails closed, and a
    model without its index is never activated (nor served)."""
    if job.verbatim_span is None:
        return False
    parent = Path(job.parent_index_path) if job.parent_index_path else None
    try:
        build_index_file(text, job.verbatim_span, index_path_for(checkpoint), parent=parent)
    except (MemoryError, OSError, ValueError, VerbatimIndexError) as error:
        for written in (checkpoint, index_path_for(checkpoint)):
            with contextlib.suppress(OSError):
                written.unlink(missing_ok=True)
        log.error("verbatim index for %s not built: %s", checkpoint, error)
        raise IndexNotBuilt(
            "the copy guard's index could not be built, so the new model was not kept "
            f"({type(error).__name__})"
        ) from error
    return True


class IndexNotBuilt(ParrotError):
    """The verbatim index failed to build; the run fails rather than ship an unguarded model."""


def _progress_reporter(
    send: Callable[[WorkerMessage], None], cancel: CancelFlag, arch: str, phase: int, phases: int
) -> Callable[[Any], bool]:
    last_sent = 0.0
    last_val: float | None = None

    def on_progress(progress: Any) -> bool:
        nonlocal last_sent, last_val
        now = time.monotonic()
        new_validation = progress.val_loss is not None and progress.val_loss != last_val
        if new_validation or now - last_sent >= PROGRESS_INTERVAL_SECONDS:
            last_sent, last_val = now, progress.val_loss
            send(
                RunProgress(
                    arch=arch,
                    phase=phase,
                    phases=phases,
                    step=int(progress.step),
                    total_steps=int(progress.total_steps),
                    train_loss=_finite_or_none(progress.train_loss),
                    val_loss=_finite_or_none(progress.val_loss),
                    best_val_loss=_finite_or_none(progress.best_val_loss),
                    chars_per_sec=float(progress.chars_per_sec),
                    eta_seconds=_finite_or_none(progress.eta_seconds),
                    elapsed_seconds=float(progress.elapsed_seconds),
                )
            )
        return not cancel.is_set()

    return on_progress


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _sort_key(loss: float) -> float:
    return loss if math.isfinite(loss) else math.inf
