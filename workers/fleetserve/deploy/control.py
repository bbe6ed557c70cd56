"""Deploy, promote and roll back: check the artifact, compute the next record, publish it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetserve.config.settings import KafkaSettings
from fleetserve.core.clock import now_ms
from fleetserve.deploy import records
from fleetserve.deploy.log import publish_record, read_deployments
from fleetserve.errors import ArtifactError, DeploymentRefused
from fleetserve.store.base import ArtifactStore, sha256_hex


def verified_sha256(store: ArtifactStore, bot_id: str, version: str) -> str:
    """The snapshot's sha256, only if it exists and its file still matches its manifest."""
    if not store.exists(bot_id, version):
        known = ", ".join(store.versions(bot_id)[-5:]) or "none"
        raise DeploymentRefused(f"{bot_id} has no snapshot {version} in {store!r} (known: {known})")
    try:
        return sha256_hex(store.read_model(bot_id, version))
    except ArtifactError as exc:
        raise DeploymentRefused(f"refusing to deploy {bot_id}/{version}: {exc}") from None


@dataclass(frozen=True)
class ControlPlane:
    kafka: KafkaSettings
    topic: str
    store: ArtifactStore
    actor: str
    timeout_s: float = 15.0

    def current(self, bot_id: str) -> dict[str, Any] | None:
        return self.all_current().get(bot_id)

    def all_current(self) -> dict[str, dict[str, Any]]:
        return read_deployments(self.kafka, self.topic, self.timeout_s)

    def deploy(
        self, bot_id: str, version: str, stage: str, include_query_text: bool | None = None
    ) -> dict[str, Any]:
        sha256 = verified_sha256(self.store, bot_id, version)
        record = records.deploy(
            self.current(bot_id),
            bot_id=bot_id,
            stage=stage,
            model_version=version,
            sha256=sha256,
            actor=self.actor,
            now_ms=now_ms(),
            include_query_text=include_query_text,
        )
        return self._publish(record)

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

    def _check_live(self, record: dict[str, Any], bot_id: str, stage: str) -> None:
        """What a stage is about to serve must still be in the store, byte for byte."""
        live = record["stages"][stage]
        sha256 = verified_sha256(self.store, bot_id, live["model_version"])
        if sha256 != live["sha256"]:
            raise DeploymentRefused(
                f"{bot_id}/{live['model_version']} now has sha256 {sha256}, but the deployment "
                f"record says {live['sha256']}; rebuild and deploy it explicitly"
            )

    def _publish(self, record: dict[str, Any]) -> dict[str, Any]:
        publish_record(self.kafka, self.topic, record, self.timeout_s)
        return record
