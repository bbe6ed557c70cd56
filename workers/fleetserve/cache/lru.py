"""The resident set: LRU order, pins and the byte and count budgets. No locks, no I/O.

:class:`ModelCache` owns one ledger and touches it only under its own lock; keeping the
bookkeeping here, free of threads, makes every rule testable with plain calls.

Rules:

* an entry with pins is never evicted; if only pinned entries are left the ledger stays
  over budget, and the next unpin or insert evicts what became evictable;
* an entry marked retired (its bot's deployment moved on) leaves as soon as it has no pins,
  whatever the budget;
* eviction takes the least recently used evictable entry first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

from fleetserve.cache.model import CacheKey, LoadedModel


@dataclass(slots=True)
class Slot:
    model: LoadedModel
    pins: int = 0
    retired: bool = False


class LruLedger:
    def __init__(self, budget_bytes: int, max_models: int | None = None) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, not {budget_bytes}")
        if max_models is not None and max_models <= 0:
            raise ValueError(f"max_models must be positive or None, not {max_models}")
        self.budget_bytes = budget_bytes
        self.max_models = max_models
        self.resident_bytes = 0
        self.pinned = 0
        """Entries with at least one pin (kept as a count: stats are read under the lock)."""
        self._slots: OrderedDict[CacheKey, Slot] = OrderedDict()  # oldest use first

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: CacheKey) -> bool:
        return key in self._slots

    def pin(self, key: CacheKey) -> LoadedModel | None:
        """The resident model for ``key``, pinned once more and made most recent; or None."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        if slot.pins == 0:
            self.pinned += 1
        slot.pins += 1
        self._slots.move_to_end(key)
        return slot.model

    def unpin(self, key: CacheKey) -> list[LoadedModel]:
        """Drop one pin; returns what left as a result (a retired entry, or evictions)."""
        slot = self._slots.get(key)
        if slot is None or slot.pins == 0:
            raise KeyError(f"{key} is not pinned")
        slot.pins -= 1
        if slot.pins:
            return []
        self.pinned -= 1
        return [self._remove(key)] if slot.retired else []

    def insert(self, model: LoadedModel, pins: int, *, retired: bool = False) -> None:
        """Add a freshly loaded model as the most recent entry (call :meth:`evict` after)."""
        key = model.route.cache_key
        if key in self._slots:
            raise KeyError(f"{key} is already resident")
        self._slots[key] = Slot(model, pins, retired)
        self.resident_bytes += model.footprint_bytes
        if pins:
            self.pinned += 1

    def retire(self, bot_id: str, keep: Collection[CacheKey] = ()) -> tuple[list[LoadedModel], int]:
        """Remove ``bot_id``'s unpinned entries except those in ``keep``; mark its pinned ones.

        Returns the removed models and how many pinned entries will go when released.
        """
        removed: list[LoadedModel] = []
        deferred = 0
        for key in [k for k in self._slots if k[0] == bot_id and k not in keep]:
            slot = self._slots[key]
            if slot.pins:
                slot.retired = True
                deferred += 1
            else:
                removed.append(self._remove(key))
        return removed, deferred

    def over_budget(self) -> bool:
        too_many = self.max_models is not None and len(self._slots) > self.max_models
        return too_many or self.resident_bytes > self.budget_bytes

    def evict(self) -> list[LoadedModel]:
        """Remove least recently used unpinned entries until within budget (or none left)."""
        excess_bytes = self.resident_bytes - self.budget_bytes
        excess_models = len(self._slots) - (self.max_models or len(self._slots))
        victims: list[CacheKey] = []
        # One walk from the oldest end that stops as soon as enough is chosen: a miss in a
        # full cache of 10,000 entries usually looks at one or two.
        for key, slot in self._slots.items():
            if excess_bytes <= 0 and excess_models <= 0:
                break
            if slot.pins == 0:
                victims.append(key)
                excess_bytes -= slot.model.footprint_bytes
                excess_models -= 1
        return [self._remove(key) for key in victims]

    def clear(self) -> list[LoadedModel]:
        models = [slot.model for slot in self._slots.values()]
        self._slots.clear()
        self.resident_bytes = 0
        self.pinned = 0
        return models

    def _remove(self, key: CacheKey) -> LoadedModel:
        slot = self._slots.pop(key)
        self.resident_bytes -= slot.model.footprint_bytes
        return slot.model
