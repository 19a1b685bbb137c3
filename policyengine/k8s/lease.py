"""Leader election on a `coordination.k8s.io/v1` Lease: one replica scans, the others stand by.

`LeaseElector.try_acquire_or_renew()` reads the Lease and takes it when it is free, expired
(`renewTime` + `leaseDurationSeconds` in the past) or already ours, by an update carrying the
resourceVersion it read: when two replicas race, the API server accepts one update and answers the
other `409 Conflict`, so exactly one holds it. A missing Lease is created (a `409 AlreadyExists` means
another replica created it first). The holder renews every `renew_every` seconds (a third of the
duration); the others retry every `retry_every`. `release()` gives it up on shutdown, so a standby
takes over without waiting for it to expire.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("policyengine.scan")
LEASE_NAME = "policyengine-scan"


def default_identity() -> str:
    """This replica: its pod name (the hostname in a pod) and process id."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{os.getpid()}"


@dataclass
class LeaseElector:
    api: client.ApiClient
    namespace: str
    identity: str = field(default_factory=default_identity)
    name: str = LEASE_NAME
    duration_seconds: float = 30.0
    _holding: bool = False

    @property
    def renew_every(self) -> float:
        return self.duration_seconds / 3

    @property
    def retry_every(self) -> float:
        return self.duration_seconds / 2

    @property
    def holding(self) -> bool:
        return self._holding

    def _spec(self, now: datetime, acquired: datetime, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=max(1, round(self.duration_seconds)),
            acquire_time=acquired,
            renew_time=now,
            lease_transitions=transitions,
        )

    def try_acquire_or_renew(self) -> bool:
        """True while this replica holds the Lease (acquired or renewed now). Raises ApiException on
        errors other than the 404/409 of a race."""
        leases = client.CoordinationV1Api(self.api)
        now = datetime.now(UTC)
        try:
            lease = leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(now, now, 0),
            )
            try:
                leases.create_namespaced_lease(self.namespace, body)
            except ApiException as race:
                if race.status != 409:
                    raise
                return self._set(False)
            return self._set(True)
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity
        mine = holder == self.identity
        renewed = spec.renew_time or spec.acquire_time
        duration = spec.lease_duration_seconds or round(self.duration_seconds)
        expired = renewed is None or _aware(renewed) + timedelta(seconds=duration) < now
        if not (mine or not holder or expired):
            return self._set(False)
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        acquired = _aware(spec.acquire_time) if mine and spec.acquire_time else now
        lease.spec = self._spec(now, acquired, transitions)
        try:
            leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status in (404, 409):
                return self._set(False)
            raise
        if not mine:
            log.info("scan lease %s/%s acquired by %s (was %s)", self.namespace, self.name, self.identity,
                     holder or "free")  # fmt: skip
        return self._set(True)

    def release(self) -> None:
        """Give the Lease up when this replica holds it (a standby takes it at its next try)."""
        if not self._holding:
            return
        leases = client.CoordinationV1Api(self.api)
        lease = leases.read_namespaced_lease(self.name, self.namespace)
        if lease.spec is None or lease.spec.holder_identity != self.identity:
            self._holding = False
            return
        lease.spec.holder_identity = None
        lease.spec.renew_time = None
        try:
            leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        self._holding = False

    def _set(self, holding: bool) -> bool:
        self._holding = holding
        return holding


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
