"""The retry tier: transient failures wait on the retry topic, with backoff, off the hot path."""
