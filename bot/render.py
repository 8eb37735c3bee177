"""Text and pictures for the front ends (Discord and console): no Discord types here.

- `neutralize_mentions` makes mention-like text inert even if a message is ever sent without
  `AllowedMentions.none()`: a zero-width space after every `@` breaks `@everyone`, `@here`,
  `<@123>`, `<@&123>` and `<@!123>` alike, whatever the digit count.
- `list_within` lists what fits and counts the rest ("and 40 more").
- `fit_message` decides between a plain message and a `.txt` attachment (Discord's
  2,000-character limit).
- `progress_bar` and `loss_curve_png` render training progress and history.
- `describe_finished_run` is the one sentence every front end uses for how a run ended.
- `describe_purge` is the one sentence for what a deletion removed, models included.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.kinds import RunStatus

if TYPE_CHECKING:
    from bot.core.storage.privacy import PurgeCounts
    from bot.core.training.progress import RunProgress
    from bot.core.training.queue import RunEvent

DISCORD_MESSAGE_LIMIT = 2000
ZERO_WIDTH_SPACE = "\u200b"


def neutralize_mentions(text: str) -> str:
    return text.replace("@", "@" + ZERO_WIDTH_SPACE)


def escape_markdown_light(text: str) -> str:
    """Escape the characters that would change how the prompt's bold span renders."""
    for char in ("\\", "*", "_", "~", "`", "|", ">"):
        text = text.replace(char, "\\" + char)
    return text


@dataclass(frozen=True)
class FittedText:
    content: str  # what goes in the message body (always <= 2,000 characters)
    attachment: str | None  # full text for a .txt attachment, when it did not fit


def fit_message(
    text: str, *, limit: int = DISCORD_MESSAGE_LIMIT, note: str = "(full text attached)"
) -> FittedText:
    if len(text) <= limit:
        return FittedText(text, None)
    room = limit - len(note) - 2
    return FittedText(text[:room].rstrip() + "…\n" + note, text)


def list_within(items: Sequence[str], limit: int, *, empty: str = "none") -> str:
    """`items` joined with ", ", as many as fit in `limit` characters, then "and N more"."""
    if not items:
        return empty
    shown: list[str] = []
    used = 0
    for number, item in enumerate(items):
        rest = len(items) - number - 1
        tail = len(f", and {rest:,} more") if rest else 0
        cost = len(item) + (2 if shown else 0)
        if used + cost + tail > limit:
            return ", ".join(shown) + f", and {len(items) - len(shown):,} more"
        shown.append(item)
        used += cost
    return ", ".join(shown)


def generation_text(prompt: str, continuation: str) -> str:
    """The prompt in bold, then the continuation; both with mentions neutralized."""
    bold = escape_markdown_light(prompt)
    # Bold markers around leading/trailing whitespace do not render; keep the spaces outside.
    stripped = bold.strip()
    if stripped:
        lead = bold[: len(bold) - len(bold.lstrip())]
        trail = bold[len(bold.rstrip()) :]
        bold = f"{lead}**{stripped}**{trail}"
    return neutralize_mentions(bold + escape_markdown_light(continuation))


def progress_bar(fraction: float, width: int = 20) -> str:
    fraction = 0.0 if math.isnan(fraction) else min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled)


def format_duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_line(progress: RunProgress | None) -> str:
    """A running run's progress bar, step, loss and ETA (an empty bar before the first report)."""
    step = progress.step if progress is not None else 0
    total_steps = progress.total_steps if progress is not None else None
    loss = progress.train_loss if progress is not None else None
    eta_seconds = progress.eta_seconds if progress is not None else None
    fraction = step / total_steps if total_steps else 0.0
    total = f"/{total_steps}" if total_steps else ""
    loss_text = f"{loss:.3f}" if loss is not None and not math.isnan(loss) else "?"
    return (
        f"`{progress_bar(fraction)}` {fraction:4.0%}  step {step}{total}  "
        f"loss {loss_text}  ETA {format_duration(eta_seconds)}"
    )


def loss_curve_png(
    history: Sequence[Sequence[float | None]], *, title: str = "Loss (nats/char)"
) -> bytes | None:
    """A PNG of train and validation loss against step; None when there is nothing to draw.

    `history` rows are `[step, train_loss, val_loss_or_None]`. Uses the Agg backend through
    the object API (no pyplot global state), so it is safe to call from worker threads.
    """
    rows = [row for row in history if len(row) >= 2 and row[0] is not None]
    if not rows:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = [float(row[0] or 0) for row in rows]
    train = [float("nan") if row[1] is None else float(row[1]) for row in rows]
    axes.plot(steps, train, label="train", color="#5865F2")
    val_points = [
        (float(row[0] or 0), float(row[2])) for row in rows if len(row) > 2 and row[2] is not None
    ]
    if val_points:
        axes.plot(
            [p[0] for p in val_points],
            [p[1] for p in val_points],
            label="validation",
            color="#ED4245",
            marker="o",
            markersize=3,
        )
    axes.set_xlabel("step")
    axes.set_ylabel("nats/char")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def describe_finished_run(event: RunEvent) -> str:
    """How a run ended, in one line: the same words in Discord, the console and the CLI."""
    run = f"Training run #{event.run_id}"
    if event.status == RunStatus.SUCCEEDED:
        bits = f"{event.val_bits_per_char:.3f}" if event.val_bits_per_char is not None else "?"
        if event.activated:
            model = f" (model {event.model_id})" if event.model_id is not None else ""
            verdict = f"The new model is active{model}."
        else:
            previous = event.incumbent_bits_per_char
            theirs = f" ({previous:.3f} bits/char)" if previous else ""
            verdict = (
                f"The previous model was better on validation text{theirs}, so it stays active."
            )
        return f"{run} finished: validation {bits} bits/char. {verdict}"
    if event.status == RunStatus.CANCELLED:
        return f"{run} was cancelled; the active model is unchanged."
    return f"{run} failed: {neutralize_mentions(event.error or 'unknown error')}"


def describe_purge(counts: PurgeCounts, *, documents: str = "uploads") -> str:
    """What a forget, opt-out or `/corpus clear` deleted, and what happens to the models."""
    text = f"Deleted {counts.messages:,} messages and {counts.documents:,} {documents}."
    if counts.models:
        models = "model" if counts.models == 1 else "models"
        text += (
            f" {counts.models:,} trained {models} that learned from them were deleted too; "
            "a new model is trained without them."
        )
    return text
