"""Console mode: Parrot's slash commands in a terminal, for one local pretend server.

    parrot console [--config config.toml]
    parrot> /generate start:"Once upon" length:200
    parrot> /train mode:fine-tune
    parrot> /model
    parrot> /corpus status
    parrot> /privacy export
    parrot> /help
    parrot> /quit

No Discord token, no network. The pretend server's corpus is the bundled public-domain text
and, on first start, the bundled checkpoint (trained on that text with `parrot train`) is
registered as its active model under the data directory, so `/generate` gives good text at
once. Commands go through the same `ParrotServices` methods and the same argument bounds
(`bot.core.inputs`) as the Discord cogs; the console user is the server's admin and has no
cooldowns (it is their machine).

Input is read line by line from stdin (no readline needed), so a script or a test can drive
it through a pipe; end of input quits cleanly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bot.core.app import build
from bot.core.config import ParrotConfig
from bot.core.errors import InvalidInput, ParrotError
from bot.core.inputs import train_arch, train_mode
from bot.core.kinds import RunTrigger
from bot.core.services import ParrotServices
from bot.core.services.actor import Actor
from bot.render import describe_finished_run, describe_purge, loss_curve_png, progress_line
from models.errors import ModelError
from models.presets import CONSOLE

CONSOLE_SERVER_ID = 1
CONSOLE_USER_ID = 1
CONSOLE_SERVER_NAME = "console"
DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_CORPUS = DATA_DIR / "tinyshakespeare.txt"
BUNDLED_CHECKPOINT = DATA_DIR / "shakespeare.ckpt"
PROMPT = "parrot> "

HELP = """\
Commands (the same as on Discord; options are name:value, quote values with spaces):
  /generate start:"Once upon" [length:1-1500] [temperature:0.1-2.0] [seed:N]
  /train [mode:fine-tune|scratch] [arch:gru|lstm|auto]     (also /train start ...)
  /train cancel
  /model                      the active model, and its loss curve saved as a PNG
  /corpus status
  /corpus upload path:FILE.txt
  /privacy export             everything stored about you, as gzip JSON
  /privacy forget             delete your messages and uploads
  /help, /quit"""


@dataclass(frozen=True)
class ConsoleCommand:
    path: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)


def parse_line(line: str) -> ConsoleCommand | None:
    """`/name [sub] key:value key:"quoted value"` -> ConsoleCommand; None for a blank line."""
    line = line.strip()
    if not line:
        return None
    if not line.startswith("/"):
        raise InvalidInput("Commands start with '/': try /help.")
    try:
        words = shlex.split(line[1:])
    except ValueError as error:
        raise InvalidInput(f"Could not read that line: {error}.") from None
    if not words:
        raise InvalidInput("Commands start with '/': try /help.")
    path: list[str] = []
    options: dict[str, str] = {}
    for word in words:
        name, colon, value = word.partition(":")
        if colon and name:
            if name in options:
                raise InvalidInput(f"The option {name} is given twice.")
            options[name] = value
        elif options:
            raise InvalidInput(f"Unexpected {word!r}: options look like name:value.")
        else:
            path.append(word.lower())
    return ConsoleCommand(tuple(path), options)


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {value!r}.") from None


def _float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not {value!r}.") from None


def _only(command: ConsoleCommand, allowed: set[str]) -> None:
    unknown = sorted(set(command.options) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise InvalidInput(f"Unknown option(s) {', '.join(unknown)} (this command takes: {known}).")


class Console:
    def __init__(self, services: ParrotServices, out: TextIO) -> None:
        self.services = services
        self.out = out
        self.actor = Actor(CONSOLE_SERVER_ID, CONSOLE_USER_ID, can_manage=True)
        self._handlers: dict[tuple[str, ...], Callable[[ConsoleCommand], Awaitable[None]]] = {
            ("generate",): self.generate,
            ("train",): self.train,
            ("train", "start"): self.train,
            ("train", "cancel"): self.train_cancel,
            ("model",): self.model,
            ("corpus",): self.corpus_status,
            ("corpus", "status"): self.corpus_status,
            ("corpus", "upload"): self.corpus_upload,
            ("privacy", "export"): self.privacy_export,
            ("privacy", "forget"): self.privacy_forget,
            ("help",): self.help,
        }

    def say(self, text: str = "", *, end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    # -- set-up --------------------------------------------------------------------------

    async def prepare(self) -> bool:
        """First start: the pretend server, its bundled corpus and bundled model.

        Returns whether the server has a model now.
        """
        config = self.services.config
        corpus_path = Path(config.console.corpus) if config.console.corpus else BUNDLED_CORPUS
        checkpoint_path = (
            Path(config.console.checkpoint) if config.console.checkpoint else BUNDLED_CHECKPOINT
        )
        if await asyncio.to_thread(corpus_path.is_file):
            data = await asyncio.to_thread(corpus_path.read_bytes)
            await self.services.corpus.seed(
                CONSOLE_SERVER_ID, CONSOLE_SERVER_NAME, CONSOLE_USER_ID, corpus_path.name, data
            )
        has_model = await self.services.models.active(CONSOLE_SERVER_ID) is not None
        if not has_model and await asyncio.to_thread(checkpoint_path.is_file):
            await self.services.models.install(CONSOLE_SERVER_ID, checkpoint_path)
            return True
        return has_model

    # -- the loop ------------------------------------------------------------------------

    async def run(self, read_line: Callable[[], Awaitable[str]], *, prompt: bool = True) -> int:
        self.say("Parrot console: a pretend server with Shakespeare as its corpus. /help, /quit.")
        while True:
            if prompt:
                self.say(PROMPT, end="")
            line = await read_line()
            if not line:  # end of input
                self.say()
                return 0
            if not await self.handle(line):
                return 0

    async def handle(self, line: str) -> bool:
        """Run one line; returns False when the user asked to quit."""
        try:
            command = parse_line(line)
            if command is None:
                return True
            if command.path in (("quit",), ("exit",)):
                return False
            handler = self._handlers.get(command.path)
            if handler is None:
                raise InvalidInput(f"Unknown command /{' '.join(command.path)}: try /help.")
            await handler(command)
        except (ParrotError, ModelError) as error:
            self.say(f"error: {error}")
        return True

    # -- commands ------------------------------------------------------------------------

    async def help(self, command: ConsoleCommand) -> None:
        self.say(HELP)

    async def generate(self, command: ConsoleCommand) -> None:
        _only(command, {"start", "length", "temperature", "seed"})
        if "start" not in command.options:
            raise InvalidInput('/generate needs start:"some text".')
        given = command.options
        options = self.services.generation.options(
            given["start"],
            _int("length", given["length"]) if "length" in given else None,
            _float("temperature", given["temperature"]) if "temperature" in given else None,
            _int("seed", given["seed"]) if "seed" in given else None,
        )
        self.say(options.prompt, end="")
        async for chunk in self.services.generation.stream(self.actor.server_id, options):
            self.say(chunk, end="")
        self.say()

    async def train(self, command: ConsoleCommand) -> None:
        _only(command, {"mode", "arch"})
        mode = train_mode(command.options.get("mode", "fine-tune"))
        arch = train_arch(command.options["arch"]) if "arch" in command.options else None
        run_id = await self.services.training.start(
            self.actor, mode=mode, arch=arch, trigger=RunTrigger.CLI
        )
        self.say(f"Training run #{run_id} queued ({mode}). Ctrl-C stops it (and the console).")
        await self._follow(run_id)

    async def _follow(self, run_id: int) -> None:
        last_line = ""
        last_time = 0.0
        loop = asyncio.get_running_loop()
        async for update in self.services.training.watch(run_id):
            if update.final:
                self.say(describe_finished_run(update))
                return
            if update.status != "running":
                continue
            line = progress_line(update.progress)
            line = line.replace("`", "")
            if line != last_line and loop.time() - last_time >= 1.0:
                last_line, last_time = line, loop.time()
                self.say(line)

    async def train_cancel(self, command: ConsoleCommand) -> None:
        _only(command, set())
        await self.services.training.cancel(self.actor)
        self.say("Cancelling the training run.")

    async def model(self, command: ConsoleCommand) -> None:
        _only(command, set())
        info = await self.services.models.info(self.actor.server_id)
        model = info.model
        bits = f"{model.val_bits_per_char:.3f}" if model.val_bits_per_char is not None else "?"
        self.say(f"Architecture:          {model.arch.upper()}")
        self.say(f"Parameters:            {model.param_count:,}")
        self.say(f"Trained:               {model.created_at:%Y-%m-%d %H:%M} UTC")
        self.say(f"Characters trained on: {model.chars_trained:,}")
        self.say(f"Validation bits/char:  {bits}")
        png = await asyncio.to_thread(loss_curve_png, info.loss_history)
        if png is not None:
            path = self.services.config.storage.data_path / "console-loss.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(path.write_bytes, png)
            self.say(f"Loss curve:            {path}")

    async def corpus_status(self, command: ConsoleCommand) -> None:
        _only(command, set())
        status = await self.services.corpus.status(self.actor.server_id)
        self.say(
            f"Corpus: {status.messages:,} messages, {status.documents:,} documents, "
            f"{status.chars:,} characters."
        )
        if status.model is None:
            self.say("Model: none yet (/train makes one).")
        else:
            self.say(
                f"Model: {status.model.arch.upper()}, trained on "
                f"{status.model.chars_trained:,} characters."
            )

    async def corpus_upload(self, command: ConsoleCommand) -> None:
        _only(command, {"path"})
        if "path" not in command.options:
            raise InvalidInput("/corpus upload needs path:FILE.txt.")
        path = Path(command.options["path"])
        if path.suffix.lower() != ".txt":
            raise InvalidInput(f"{path} is not a .txt file.")
        try:
            data = await asyncio.to_thread(_read_file, path)
        except OSError as error:
            raise InvalidInput(f"Cannot read {path}: {error.strerror}.") from None
        size = await self.services.corpus.upload(self.actor, path.name, data)
        self.say(f"Added {path.name} ({size:,} bytes) to the corpus.")

    async def privacy_export(self, command: ConsoleCommand) -> None:
        _only(command, set())
        files = await self.services.privacy.export_user(self.actor.user_id, part_limit=None)
        try:
            [source] = files.paths  # no upload limit here: one file
            path = self.services.config.storage.data_path / source.name
            path.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(shutil.move, source, path)  # /tmp may be another disk
        finally:
            await asyncio.to_thread(files.delete)
        self.say(f"Exported your data ({files.sizes[0]:,} bytes, gzip-compressed JSON) to {path}")

    async def privacy_forget(self, command: ConsoleCommand) -> None:
        _only(command, set())
        counts = await self.services.privacy.forget_user(self.actor.user_id, self.actor.server_id)
        self.say(describe_purge(counts))


def _read_file(path: Path) -> bytes:
    return path.expanduser().read_bytes()


def console_config(config: ParrotConfig) -> ParrotConfig:
    """The config with training budgets capped for an interactive session: a run blocks the
    prompt, and a first model must come quickly on a fresh machine (`presets.CONSOLE`)."""
    training = config.training
    cap = CONSOLE.max_minutes
    assert cap is not None  # the console preset always has a time budget
    capped = dataclasses.replace(
        training,
        max_minutes=min(training.max_minutes, cap),
        fine_tune_minutes=min(training.fine_tune_minutes, cap),
    )
    return dataclasses.replace(config, training=capped)


async def run_console(
    config: ParrotConfig, *, stdin: TextIO | None = None, out: TextIO | None = None
) -> int:
    source: TextIO = stdin or sys.stdin
    sink: TextIO = out or sys.stdout
    services = build(console_config(config))
    try:
        await services.start(schedule=False)
        console = Console(services, sink)
        if not await console.prepare():
            # No bundled checkpoint: train a first model now, with a progress bar.
            console.say("No model yet: training one on the corpus first.")
            await console.handle("/train mode:scratch")
        interactive = source.isatty()

        async def read_line() -> str:
            return await asyncio.to_thread(source.readline)

        return await console.run(read_line, prompt=interactive)
    finally:
        await services.close()
