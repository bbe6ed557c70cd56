"""Settings: one frozen object, built once at the entry point from flags, environment and file."""
