"""Trained models on disk and in the database: file naming and sidecars, installing a
checkpoint, and the registry that decides which model of a server is active."""
