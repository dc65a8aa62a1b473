"""Operator tooling: start-up checks, one-line problems, and the CLI's commands."""
