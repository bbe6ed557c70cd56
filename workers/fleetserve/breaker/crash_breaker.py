"""The crash-loop breaker as one object the worker loop calls: start, judge, begin, commit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleetserve.breaker.guard import Judgement, judge
from fleetserve.breaker.inflight import InflightFile, spans_of
from fleetserve.breaker.ledger import CrashLedger
from fleetserve.config.settings import KafkaSettings
from fleetserve.core.records import InboundRecord, Partition

logger = logging.getLogger(__name__)

NO_JUDGEMENT = Judgement()


class CrashBreaker:
    """Counts crashes per record for one worker of one group, and judges each pass."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        group: str,
        worker_id: str,
        state_dir: Path,
        poison_after: int,
    ) -> None:
        self.worker_id = worker_id
        self.poison_after = poison_after
        self.ledger = CrashLedger(kafka, topic, group)
        self.inflight = InflightFile(state_dir, group, worker_id)
        self._incarnation = uuid.uuid4().hex[:16]
        self._reported = False

    def start(self) -> None:
        self.ledger.start()

    def ready(self, timeout_s: float) -> bool:
        """Caught up with the group's evidence, and this worker's own last crash reported."""
        if not self.ledger.wait_caught_up(timeout_s):
            return False
        if not self._reported:
            dead = self.inflight.previous()
            if dead is not None and dead.spans:
                self.ledger.report(dead, self.worker_id)
            self.inflight.open(self._incarnation)
            self.inflight.clean()  # reported: a crash before the first pass is not recounted
            self._reported = True
        return True

    @property
    def healthy(self) -> bool:
        return self.ledger.healthy

    def judge(self, records: Sequence[InboundRecord]) -> Judgement:
        if not self.ledger.any_evidence():
            return NO_JUDGEMENT
        return judge(records, self.ledger.evidence, self.poison_after)

    def begin(self, records: Sequence[InboundRecord], now_ms: int) -> None:
        """The pass is about to touch ``records``: leave that behind in case it dies."""
        self.inflight.begin(spans_of([r.coordinates for r in records]), now_ms)

    def committed(self, next_offsets: Mapping[Partition, int]) -> None:
        self.ledger.resolve(next_offsets)

    def stop(self, *, clean: bool) -> None:
        """``clean``: the last pass committed; nothing in flight is left to count."""
        if clean and self._reported:
            self.inflight.clean()
        self.inflight.close()
        self.ledger.stop()
