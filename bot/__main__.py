"""`python -m bot ...` is the `parrot` command (e.g. `python -m bot console`)."""

from bot.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
