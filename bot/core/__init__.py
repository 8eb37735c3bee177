"""Parrot without Discord: storage, training, checkpoints, generation and the services over
them, wired by `app.build(config)`. Nothing here imports discord.py."""
