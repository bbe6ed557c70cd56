"""The message contracts of fleetserve: JSON Schemas, their codec and typed shapes."""

from fleetserve.contracts.codec import decode, encode, validate
from fleetserve.contracts.schemas import MessageKind

__all__ = ["MessageKind", "decode", "encode", "validate"]
