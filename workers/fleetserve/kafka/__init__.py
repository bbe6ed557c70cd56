"""Thin factories over confluent-kafka clients; no network I/O until a method is called."""
