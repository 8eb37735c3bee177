"""`python -m bot.cli`: the same as the `parrot` console script."""

from bot.cli import main

raise SystemExit(main())
