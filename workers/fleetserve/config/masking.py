"""Hide secrets when settings are printed or logged."""

from __future__ import annotations

from collections.abc import Mapping

MASK = "***"

# librdkafka property names that hold credentials; matched on dotted name parts.
_SECRET_PARTS = frozenset({"password", "secret", "token", "jaas"})
_SECRET_KEYS = frozenset({"ssl.key.pem", "ssl.keystore.password", "ssl.key.password"})


def is_secret(key: str) -> bool:
    """True when a Kafka client property carries a credential."""
    key = key.lower()
    if key in _SECRET_KEYS:
        return True
    return any(part in _SECRET_PARTS for part in key.replace("_", ".").split("."))


def mask_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """A copy with every secret value replaced by a fixed mask (length is not leaked)."""
    return {key: MASK if is_secret(key) else value for key, value in properties.items()}
