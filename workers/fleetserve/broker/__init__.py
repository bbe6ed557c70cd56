"""The embedded Tansu broker for development, demos and tests."""
