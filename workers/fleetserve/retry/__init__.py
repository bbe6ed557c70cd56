"""The retry tier: transient failures wait on the retry topic, with backoff, off the hot path."""

from fleetserve.retry.backoff import BackoffPolicy, compute_backoff
from fleetserve.retry.state import RetryState, retry_headers, retry_state

__all__ = ["BackoffPolicy", "RetryState", "compute_backoff", "retry_headers", "retry_state"]
