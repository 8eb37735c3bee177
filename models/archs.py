"""The network architectures, defined here once and importable without torch (the bot's
config and storage layers name them; `models.charrnn` builds them). Every other list of
architectures is derived from these.
"""

from __future__ import annotations

from typing import Literal, get_args

# The gated cells are the ones worth comparing ("auto" training tries both); the plain RNN
# is kept for experiments from the command line.
GatedArch = Literal["gru", "lstm"]
Arch = Literal[GatedArch, "rnn"]
ARCHS: tuple[Arch, ...] = get_args(Arch)
GATED_ARCHS: tuple[GatedArch, ...] = get_args(GatedArch)
