"""Data package: the declarative topic file and its schema (no code)."""
