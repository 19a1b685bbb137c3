"""Routes: a flow of data between a workload in one cluster and a service's endpoints in another.

A route is what the rules judge. Data moves both ways along it: the caller's data goes to the service's
cluster, the service's data comes back. Each end says which cluster it is in and which data it holds
(data classes, subject jurisdictions, and the regimes derived from them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class PiplVolume:
    """What a service declares for China's PIPL outbound thresholds (per calendar year)."""

    volume: int | None = None  # individuals whose non-sensitive PI leaves the mainland; None = undeclared
    sensitive_volume: int | None = None  # individuals whose sensitive PI leaves the mainland
    ciio: bool = False  # the service is run as critical information infrastructure


@dataclass(frozen=True, slots=True)
class DataProfile:
    """The data one end of a route holds: classes, whose data it is, and the regimes that follow."""

    data_classes: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    regimes: tuple[str, ...] = ()
    pipl: PiplVolume | None = None
    origin: tuple[str, ...] = ()  # where the data was collected or generated, when declared

    @property
    def regulated(self) -> bool:
        return bool(self.regimes)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a route. `cluster` is the only trusted locator; region/jurisdiction come from policy."""

    cluster: str
    workload: str | None = None  # "namespace/name" of the workload or service at this end, when known
    data: DataProfile = field(default_factory=DataProfile)
    region: str | None = None  # filled from the policy repo ("aws/eu-central-1"); None when unknown
    jurisdiction: str | None = None
    entity: str | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """A flow between `source` (the caller) and `destination` (endpoints of `service`)."""

    service: str  # "namespace/name" of the destination service
    source: Endpoint
    destination: Endpoint
    via: str = ""  # what creates the route, e.g. "GlobalTrafficPolicy shop/checkout targets[1]"
    opt_out: bool = False  # the request carries a sale/share opt-out (Sec-GPC: 1)

    @property
    def namespace(self) -> str:
        return self.service.split("/", 1)[0] if "/" in self.service else ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
