"""The decision table: (source, destination service, opt-out) -> answer, compiled from the policy.

Every known service is judged as a destination from every known service (and so every known workload
identity) as a source, with and without a `Sec-GPC: 1` opt-out, once per policy revision. A request is
then a dict lookup. A pair the policy does not list (an unknown identity, a host outside `services.yaml`)
is judged through the Decider on first sight and kept in a bounded LRU.

An answer's clusters are the destination's clusters that the rules permit, in preference order: the
cluster the filter runs in, then clusters in the same jurisdiction, then the others (each group by name).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policyengine.decision import Decision, Outcome
from policyengine.route import DataProfile, Route
from policyengine.routing.identity import SourceIdentity, service_of_host

if TYPE_CHECKING:
    from policyengine.decide import Decider
    from policyengine.policy import LoadedPolicy

DEFAULT_CACHE_SIZE = 10_000

# How a source with no identity header is keyed (fail closed happens before; kept for /v1/decide).
TableKey = tuple[str, str, bool]


@dataclass(frozen=True, slots=True)
class RouteAnswer:
    """What the table says for one (source, destination, opt-out): allowed or not, and where to go.

    `decision` is the template Decision of the rules (its violations, regimes, revision, engine); each
    request gets a copy with a fresh decision_id. `clusters` are the permitted destination clusters in
    preference order; empty when refused. `warned` is true when the rules found a violation whose
    enforcement is warn or dryrun, so the request goes through anyway.
    """

    source: str  # the source key: "ns/name" of a known service, else the identity as sent
    destination: str  # "ns/name" of the destination service
    opt_out: bool
    allowed: bool
    clusters: tuple[str, ...]
    decision: Decision
    warned: bool = False
    known: bool = True  # false for pairs judged on first sight (not compiled from services.yaml)

    @property
    def cluster(self) -> str | None:
        """The preferred cluster, or None when refused."""
        return self.clusters[0] if self.clusters else None


def preference_order(
    clusters: Iterable[str], here: str, jurisdiction_of: Mapping[str, str | None]
) -> tuple[str, ...]:
    """Order clusters: `here` first, then the same jurisdiction as `here`, then the rest; by name within.

    A subdivision counts as its country (`US-CA` is in `US`): a request from us-1 prefers us-ca-1 over
    eu-1.
    """
    home = _country(jurisdiction_of.get(here))

    def rank(name: str) -> tuple[int, str]:
        if name == here:
            return (0, name)
        if home is not None and _country(jurisdiction_of.get(name)) == home:
            return (1, name)
        return (2, name)

    return tuple(sorted(set(clusters), key=rank))


def _country(jurisdiction: str | None) -> str | None:
    return jurisdiction.split("-", 1)[0] if jurisdiction else None


class DecisionTable:
    """The compiled answers for one policy revision, plus a bounded cache for pairs it did not list.

    Built with `DecisionTable.build(policy, decider, cluster)`; `lookup` never raises for a pair the
    policy knows, and judges an unknown pair once through the Decider (which never raises either).
    """

    def __init__(
        self,
        policy: LoadedPolicy,
        decider: Decider,
        cluster: str,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.policy = policy
        self.decider = decider
        self.cluster = cluster
        self.revision: str = policy.revision
        self.cache_size = cache_size
        self.build_seconds = 0.0
        self._answers: dict[TableKey, RouteAnswer] = {}
        self._sources: dict[str, str] = {}  # identity or service name -> source service "ns/name"
        self._hosts: dict[str, str] = {}  # host -> destination service "ns/name"
        self._service_clusters: dict[str, tuple[str, ...]] = {}
        self._cache: OrderedDict[TableKey, RouteAnswer] = OrderedDict()
        self._cache_lock = threading.Lock()
        names = list(policy.cluster_names())
        self._jurisdiction_of: dict[str, str | None] = {}
        for name in names:
            info = policy.cluster_info(name)
            self._jurisdiction_of[name] = info.jurisdiction if info is not None else None
        self._all_clusters = tuple(names)
        self._index_services()

    @classmethod
    def build(
        cls,
        policy: LoadedPolicy,
        decider: Decider,
        cluster: str,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> DecisionTable:
        """Judge every known source x destination x opt-out once and return the filled table."""
        table = cls(policy, decider, cluster, cache_size)
        table.compile()
        return table

    # -- building -------------------------------------------------------------------------------

    def _index_services(self) -> None:
        services = self.policy.data.get("services") or {}
        for name in sorted(services):
            info = self.policy.service(name)
            if info is None:
                continue
            self._service_clusters[name] = tuple(info.clusters)
            self._sources[name] = name
            for identity in info.identities:
                self._sources[identity] = name
            namespace, _, short = name.partition("/")
            for host in (
                *info.hosts,
                f"{short}.{namespace}",
                f"{short}.{namespace}.svc",
                f"{short}.{namespace}.svc.cluster.local",
                f"{short}.{namespace}.svc.clusterset.local",
            ):
                self._hosts.setdefault(host.lower().rstrip("."), name)

    def compile(self) -> None:
        """Fill the table for every known source and destination (both opt-out states)."""
        started = time.perf_counter()
        services = sorted(self._service_clusters)
        answers: dict[TableKey, RouteAnswer] = {}
        for source in services:
            for destination in services:
                for opt_out in (False, True):
                    answers[(source, destination, opt_out)] = self._judge(
                        source_key=source,
                        source_workload=source,
                        destination=destination,
                        opt_out=opt_out,
                        known=True,
                    )
        self._answers = answers
        self.build_seconds = time.perf_counter() - started

    @property
    def size(self) -> int:
        """How many compiled answers the table holds (the cache not counted)."""
        return len(self._answers)

    @property
    def cached(self) -> int:
        """How many first-sight answers the cache holds."""
        return len(self._cache)

    def _profile(self, workload: str | None) -> DataProfile:
        if not workload or "/" not in workload:
            return DataProfile()
        namespace, name = workload.split("/", 1)
        return self.policy.classify(namespace, name, {}, {})

    def _judge(
        self,
        *,
        source_key: str,
        source_workload: str | None,
        destination: str,
        opt_out: bool,
        known: bool,
    ) -> RouteAnswer:
        candidates = self._service_clusters.get(destination) or self._all_clusters
        ordered = preference_order(candidates, self.cluster, self._jurisdiction_of)
        # Judge the route toward the most preferred destination cluster; the rules answer with every
        # cluster they permit for this route, so one evaluation covers all candidates.
        target = ordered[0] if ordered else self.cluster
        route = Route(
            service=destination,
            source=self.decider.endpoint(
                self.cluster, workload=source_workload, data=self._profile(source_workload)
            ),
            destination=self.decider.endpoint(target, workload=destination, data=self._profile(destination)),
            via=f"routing filter in {self.cluster}",
            opt_out=opt_out,
        )
        decision = self.decider.decide(route)
        permitted = set(decision.permitted_clusters)
        # Data moves both ways: when the rules do not permit the cluster the caller is in, no choice of
        # destination makes the route compliant (e.g. PIPL data coming back to eu-1).
        here_permitted = self.cluster in permitted
        clusters = tuple(c for c in ordered if c in permitted) if here_permitted else ()
        warned = False
        allowed = bool(clusters)
        if not allowed and not decision.enforced and not _engine_failed(decision):
            # The rules found a violation whose enforcement is warn or dryrun: the request goes through
            # to the preferred cluster, and the decision (with its violations) is audited.
            clusters = ordered
            allowed = bool(clusters)
            warned = decision.outcome is not Outcome.ALLOW or bool(decision.violations)
        return RouteAnswer(
            source=source_key,
            destination=destination,
            opt_out=opt_out,
            allowed=allowed,
            clusters=clusters,
            decision=decision,
            warned=warned,
            known=known,
        )

    # -- lookups -----------------------------------------------------------------------------------

    def source_key(self, identity: SourceIdentity) -> str | None:
        """The known service an identity (or service name) belongs to, or None."""
        return self._sources.get(identity.value)

    def destination_of(self, host: str) -> str | None:
        """The service a host names: a known one, or `namespace/name` of a Kubernetes DNS name."""
        known = self._hosts.get(host)
        if known is not None:
            return known
        return service_of_host(host)

    def is_known_destination(self, service: str) -> bool:
        """Whether services.yaml lists the service."""
        return service in self._service_clusters

    def lookup(self, identity: SourceIdentity, destination: str, opt_out: bool) -> RouteAnswer:
        """The answer for a caller and a destination service: a dict lookup for known pairs."""
        known_source = self._sources.get(identity.value)
        if known_source is not None:
            answer = self._answers.get((known_source, destination, opt_out))
            if answer is not None:
                return answer
            key: TableKey = (known_source, destination, opt_out)
            workload: str | None = known_source
        else:
            key = (identity.value, destination, opt_out)
            workload = identity.workload
        return self._first_sight(key, workload)

    def peek(self, identity: SourceIdentity, destination: str, opt_out: bool) -> RouteAnswer | None:
        """The answer if it is compiled or cached (no engine call), else None."""
        known_source = self._sources.get(identity.value)
        key: TableKey = (known_source or identity.value, destination, opt_out)
        answer = self._answers.get(key)
        if answer is not None:
            return answer
        with self._cache_lock:
            return self._cache.get(key)

    def _first_sight(self, key: TableKey, workload: str | None) -> RouteAnswer:
        with self._cache_lock:
            answer = self._cache.get(key)
            if answer is not None:
                self._cache.move_to_end(key)
                return answer
        source_key, destination, opt_out = key
        answer = self._judge(
            source_key=source_key,
            source_workload=workload,
            destination=destination,
            opt_out=opt_out,
            known=False,
        )
        if _engine_failed(answer.decision):
            return answer  # an engine failure is not remembered: the next request tries again
        with self._cache_lock:
            self._cache[key] = answer
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return answer

    def answers(self) -> dict[TableKey, RouteAnswer]:
        """A copy of the compiled answers (for `explain` style listings and tests)."""
        return dict(self._answers)


def _engine_failed(decision: Decision) -> bool:
    extra: Any = decision.extra or {}
    return bool(extra.get("engine_error")) or any(v.rule == "engine-error" for v in decision.violations)
