"""The worker never outlives the bot (issue #14): kill -9 a real bot process mid-run, and
its real worker process ends at once with one line, no traceback; a restarted bot marks
the run failed and never has two workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.core.kinds import RunStatus
from bot.core.storage import corpus
from bot.core.storage.db import make_engine, make_session_factory
from bot.core.storage.tables import TrainingRun
from bot.core.training.queue import RESTART_REASON, recover_interrupted
from tests.bot.conftest import TINY_TRAINING

REPO = Path(__file__).resolve().parents[4]
SERVER = 8080
ENDLESS = {**TINY_TRAINING, "max_steps": 1_000_000, "max_minutes": 5.0}
DEATH_TIMEOUT_S = 20.0


def seeded_sessions(url: str) -> sessionmaker[Session]:
    sessions = make_session_factory(make_engine(url))
    lines = [f"line {i}: the parrot repeats what the sailors say" for i in range(300)]
    with sessions() as session, session.begin():
        corpus.add_messages(
            session,
            SERVER,
            [
                corpus.IncomingMessage(id=i + 1, channel_id=1, author_id=5, content=line)
                for i, line in enumerate(lines)
            ],
        )
    return sessions


def is_gone(pid: int) -> bool:
    """Exited (a zombie waiting for init to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_bot_ends_its_worker_quietly(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    sessions = seeded_sessions(sqlite_database_url)
    stderr = tmp_path / "bot.stderr"
    with stderr.open("wb") as errors:
        bot = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.helpers.training_parent",
                sqlite_database_url,
                str(tmp_path / "data"),
                str(SERVER),
                json.dumps(ENDLESS),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        try:
            assert bot.stdout is not None
            line = bot.stdout.readline()  # blocks until the worker trains
            assert line, stderr.read_text()
            started = json.loads(line)
            worker = int(started["worker_pid"])
            assert not is_gone(worker)
            os.kill(bot.pid, signal.SIGKILL)
            bot.wait(timeout=10)
            deadline = time.monotonic() + DEATH_TIMEOUT_S
            while not is_gone(worker) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert is_gone(worker), "the worker outlived the bot"
        finally:
            if bot.poll() is None:
                bot.kill()
    log = stderr.read_text()
    assert "the bot is gone; stopping." in log
    assert "Traceback" not in log

    # The restarted bot finds the run it was training and marks it failed.
    assert recover_interrupted(sessions) == 1
    with sessions() as session:
        run = session.get(TrainingRun, started["run_id"])
        assert run is not None and (run.status, run.error) == (RunStatus.FAILED, RESTART_REASON)
