"""Read Kafka headers from producers we do not control: pure, and never raising."""

from __future__ import annotations

from fleetserve.core.records import Headers


def header_int(headers: Headers, name: str, default: int = 0) -> int:
    """The last ``name`` header as a non-negative decimal int, or ``default`` when unusable.

    Headers come from producers we do not control: a missing, empty, non-numeric or
    negative value never raises, it just counts as absent.
    """
    for key, value in reversed(headers):
        if key == name:
            try:
                number = int((value or b"").decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                return default
            return number if number >= 0 else default
    return default


def header_text(headers: Headers, name: str) -> str | None:
    for key, value in reversed(headers):
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


def without(headers: Headers, prefixes: tuple[str, ...]) -> Headers:
    """``headers`` minus every header whose name starts with one of ``prefixes``."""
    return tuple((k, v) for k, v in headers if not k.startswith(prefixes))
