"""The `sembako` command: one entry point that starts and drives the whole network."""
