"""Data package: the JSON Schema message contracts and their examples (no code)."""
