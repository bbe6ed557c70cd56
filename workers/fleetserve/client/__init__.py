"""A small Python client for upstream code: send queries, get replies or dead letters back."""
