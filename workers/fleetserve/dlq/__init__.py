"""Operators' view of the dead-letter topic: list, show, stats and replay."""
