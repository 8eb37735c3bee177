"""Parrot: a Discord bot that learns to write like your server."""
