"""Deploy, promote and roll back: place the snapshot, compute the next record, publish it.

The snapshot is placed (checked, and published to the models topic) *before* the
deployment record that names it, so no worker ever reads a deployment whose snapshot is
not there yet; the record names the snapshot's location on the models topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetserve.config.settings import KafkaSettings
from fleetserve.core.clock import now_ms
from fleetserve.deploy import records
from fleetserve.deploy.log import publish_record, publish_records, read_deployments
from fleetserve.deploy.placement import Placed, Placement, PublishingPlacement
from fleetserve.errors import DeploymentRefused


@dataclass(frozen=True)
class ControlPlane:
    kafka: KafkaSettings
    topic: str
    placement: Placement
    actor: str
    timeout_s: float = 15.0

    def current(self, bot_id: str) -> dict[str, Any] | None:
        self.placement.prepare()  # the model index is read while the deployments are
        return self.all_current().get(bot_id)

    def all_current(self) -> dict[str, dict[str, Any]]:
        return read_deployments(self.kafka, self.topic, self.timeout_s)

    def deploy(
        self, bot_id: str, version: str, stage: str, include_query_text: bool | None = None
    ) -> dict[str, Any]:
        current = self.current(bot_id)
        placed = self.placement.place(bot_id, version)
        record = self._deployed(current, bot_id, version, stage, placed, include_query_text)
        return self._publish(record)

    def deploy_many(
        self, snapshots: Sequence[tuple[str, str]], stage: str
    ) -> list[tuple[dict[str, Any], Placed]]:
        """Place every (bot, version), then deploy them all on ``stage`` in one write."""
        self.placement.prepare()
        if isinstance(self.placement, PublishingPlacement):
            placements = self.placement.place_many(snapshots)
        else:
            placements = [self.placement.place(bot, version) for bot, version in snapshots]
        table = self.all_current()
        deployed = [
            (self._deployed(table.get(bot), bot, version, stage, placed), placed)
            for (bot, version), placed in zip(snapshots, placements, strict=True)
        ]
        if deployed:
            publish_records(self.kafka, self.topic, [r for r, _ in deployed], self.timeout_s)
        return deployed

    def promote(self, bot_id: str, source: str, target: str) -> dict[str, Any]:
        current = self.current(bot_id)
        record = records.promote(
            current, bot_id=bot_id, source=source, target=target, actor=self.actor, now_ms=now_ms()
        )
        self._check_live(record, bot_id, target)
        return self._publish(record)

    def rollback(
        self, bot_id: str, stage: str, evidence: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        record = records.rollback(
            self.current(bot_id),
            bot_id=bot_id,
            stage=stage,
            actor=self.actor,
            now_ms=now_ms(),
            evidence=evidence,
        )
        self._check_live(record, bot_id, stage)
        return self._publish(record)

    def close(self) -> None:
        self.placement.close()

    def _deployed(
        self,
        current: dict[str, Any] | None,
        bot_id: str,
        version: str,
        stage: str,
        placed: Placed,
        include_query_text: bool | None = None,
    ) -> dict[str, Any]:
        record = records.deploy(
            current,
            bot_id=bot_id,
            stage=stage,
            model_version=version,
            sha256=placed.sha256,
            actor=self.actor,
            now_ms=now_ms(),
            include_query_text=include_query_text,
        )
        return records.locate(record, stage, placed.location)

    def _check_live(self, record: dict[str, Any], bot_id: str, stage: str) -> None:
        """What a stage is about to serve must still be placed, byte for byte.

        A record from before the models topic gains the location here (published now).
        """
        live = record["stages"][stage]
        placed = self.placement.place(bot_id, live["model_version"])
        if placed.sha256 != live["sha256"]:
            raise DeploymentRefused(
                f"{bot_id}/{live['model_version']} now has sha256 {placed.sha256}, but the "
                f"deployment record says {live['sha256']}; rebuild and deploy it explicitly"
            )
        if placed.location is not None:
            records.locate(record, stage, placed.location)

    def _publish(self, record: dict[str, Any]) -> dict[str, Any]:
        publish_record(self.kafka, self.topic, record, self.timeout_s)
        return record
