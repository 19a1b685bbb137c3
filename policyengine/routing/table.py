"""The decision table: (source, destination service, opt-out) -> answer, from one evaluation per key.

A pair's answer is decided by what the rules read (`routing.keys`): the data profile of each end, the
destination cluster judged, the transfers recorded for the destination service, its namespace's
enforcement, the opt-out where CCPA data moves, and the date. The table keeps a compact map from every
known service (and workload identity) to those parts as small integers, and one evaluation per distinct
key; `compile` evaluates every key the known services make, so memory grows with distinct keys plus
services, not with services squared. A pair's answer is made from its key's answer on first sight
(the service's name put into the messages, the digest of the pair's own input) and kept in a bounded
LRU; an identity or host the policy does not list is keyed the same way.

Answers hold for the day they were judged on: a key or pair answer of an earlier day is judged again
(a transfer that expires at midnight stops covering the route then, not at the next reload). When a
module reads the input beyond what the key covers (`keys.coverage`), every pair is judged on its own
through the Decider, as exact as before and as lazily. A table built with the previous one reuses each
key answer whose key is unchanged when the modules and the rest of the data are the same, so a reload
that changes one transfer or one classification evaluates only the keys it touches.

An answer's clusters are the destination's clusters that the rules permit, in preference order: the
cluster the filter runs in, then clusters in the same jurisdiction, then the others (each group by name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from policyengine.decide import rfc3339, serving_modules
from policyengine.decision import Decision, Outcome, Violation
from policyengine.route import DataProfile, Route
from policyengine.routing.identity import SourceIdentity, service_of_host
from policyengine.routing.keys import (
    PLACEHOLDER_NAME,
    Coverage,
    coverage,
    custom_modules,
    enforcement_class,
    placeholder_service,
)

if TYPE_CHECKING:
    from policyengine.decide import Decider
    from policyengine.policy import LoadedPolicy

DEFAULT_CACHE_SIZE = 10_000
SECONDS_PER_DAY = 86_400

# A pair: (source key, destination service, opt-out).
TableKey = tuple[str, str, bool]
# A key: (source profile, destination key, opt-out as it matters), as small integers.
AnswerKey = tuple[int, int, bool]


@dataclass(frozen=True, slots=True)
class RouteAnswer:
    """What the table says for one (source, destination, opt-out): allowed or not, and where to go.

    `decision` is the template Decision of the rules (its violations, regimes, revision, engine, the
    digest of this pair's input); each request gets a copy with a fresh decision_id. `clusters` are the
    permitted destination clusters in preference order; empty when refused. `warned` is true when the
    rules found a violation whose enforcement is warn or dryrun, so the request goes through anyway.
    `day` is the UTC day number the answer holds for, `moment` the decision time it was judged at.
    """

    source: str  # the source key: "ns/name" of a known service, else the identity as sent
    destination: str  # "ns/name" of the destination service
    opt_out: bool
    allowed: bool
    clusters: tuple[str, ...]
    decision: Decision
    warned: bool = False
    known: bool = True  # false for pairs judged on first sight (not listed by services.yaml)
    day: int = 0
    moment: str = ""

    @property
    def cluster(self) -> str | None:
        """The preferred cluster, or None when refused."""
        return self.clusters[0] if self.clusters else None


@dataclass(frozen=True, slots=True)
class KeyedAnswer:
    """The rules' decision for one key, naming `placeholder` as the destination service."""

    decision: Decision
    placeholder: str
    moment: str  # RFC 3339 of the decision time
    day: int


@dataclass(frozen=True, slots=True)
class Destination:
    """What a service contributes to a key as the destination end (interned: services share them)."""

    profile: int
    target: str  # the destination cluster judged: the most preferred one
    transfers: int
    enforcement: int
    # The service itself when transfers are recorded for it: the rules look its records up by name, so
    # its key is its own and is judged under its real name (else a placeholder names the service).
    service: str = ""


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


class _Interned:
    """Values numbered in order of first sight (profiles, transfer lists, enforcement classes)."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._ids: dict[Any, int] = {}

    def id_of(self, value: Any) -> int:
        found = self._ids.get(value)
        if found is None:
            found = self._ids[value] = len(self.values)
            self.values.append(value)
        return found

    def __len__(self) -> int:
        return len(self.values)


def policy_fingerprint(policy: LoadedPolicy, coverage_of: Coverage) -> str:
    """What every key answer depends on besides its key: the modules, and the data except what keys
    carry (services, classifications, the transfers of single services) and the revision. With modules of its own a
    policy's whole data counts, since they may read any of it."""
    data: dict[str, Any] = dict(policy.data)
    if not custom_modules(serving_modules(policy.modules)):
        index = dict(data.get("index") or {})
        index["transfers"] = {"*": (index.get("transfers") or {}).get("*", [])}
        data["index"] = index
        for name in ("revision", "services", "classifications", "transfers"):
            data.pop(name, None)
    text = json.dumps(
        {"modules": serving_modules(policy.modules), "data": data, "keyed": coverage_of.keyed},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


class DecisionTable:
    """The answers for one policy revision: one evaluation per key, pairs made from them on first sight.

    `compile()` evaluates every key of the known services (the build); `lookup` never raises, and
    judges what the build did not cover through the Decider (which never raises either).
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
        self.evaluations = 0  # Rego evaluations this table asked for (keys, or pairs when not keyed)
        self.reused = 0  # key answers taken from the previous table
        self.complete = False
        self.clock: Callable[[], float] = time.time  # seconds since the epoch (tests move it)
        self.coverage = coverage(serving_modules(policy.modules))
        self._lock = threading.Lock()
        self._keyed: dict[AnswerKey, KeyedAnswer] = {}
        self._pairs: OrderedDict[TableKey, RouteAnswer] = OrderedDict()
        self._sources: dict[str, str] = {}  # identity or service name -> source service "ns/name"
        self._hosts: dict[str, str] = {}  # host -> destination service "ns/name"
        self._ordered: dict[str, tuple[str, ...]] = {}  # service -> its clusters in preference order
        self._profile_of: dict[str, int] = {}  # known service -> its data profile
        self._destination_of: dict[str, int] = {}  # known service -> its Destination
        self._profiles = _Interned()  # DataProfile
        self._ccpa: list[bool] = []  # per profile: does it hold CCPA data
        self._transfers = _Interned()  # canonical JSON of a service's transfer records
        self._enforcements = _Interned()  # tuple of actions per regime
        self._namespace_of_enforcement: dict[int, str] = {}  # a namespace with that enforcement
        self._destinations = _Interned()  # Destination
        index = policy.data.get("index") or {}
        self._index_transfers: Mapping[str, Any] = index.get("transfers") or {}
        self._index_enforcement: Mapping[str, Any] = index.get("enforcement") or {}
        self._default_action = str((policy.data.get("enforcement") or {}).get("default", "deny"))
        self._jurisdiction_of: dict[str, str | None] = {}
        for name in policy.cluster_names():
            info = policy.cluster_info(name)
            self._jurisdiction_of[name] = info.jurisdiction if info is not None else None
        self._all_clusters = tuple(policy.cluster_names())
        self._via = f"routing filter in {cluster}"
        self._index_services()

    @classmethod
    def build(
        cls,
        policy: LoadedPolicy,
        decider: Decider,
        cluster: str,
        cache_size: int = DEFAULT_CACHE_SIZE,
        previous: DecisionTable | None = None,
    ) -> DecisionTable:
        """Index the policy, evaluate every key of its known services, and return the complete table."""
        table = cls(policy, decider, cluster, cache_size)
        table.compile(previous)
        return table

    # -- the keys ----------------------------------------------------------------------------------

    def _index_services(self) -> None:
        services = self.policy.data.get("services") or {}
        for name in sorted(services):
            info = self.policy.service(name)
            if info is None:
                continue
            self._ordered[name] = preference_order(
                info.clusters or self._all_clusters, self.cluster, self._jurisdiction_of
            )
            self._profile_of[name] = self._profile_id(self._classify(name))
            self._destination_of[name] = self._destination_id(name, self._ordered[name])
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

    def _classify(self, workload: str | None) -> DataProfile:
        known = self._profile_of.get(workload) if workload is not None else None
        if known is not None:
            return self._profiles.values[known]
        if not workload or "/" not in workload:
            return DataProfile()
        namespace, name = workload.split("/", 1)
        return self.policy.classify(namespace, name, {}, {})

    def _profile_id(self, profile: DataProfile) -> int:
        with self._lock:
            return self._intern_profile(profile)

    def _intern_profile(self, profile: DataProfile) -> int:
        found = self._profiles.id_of(profile)
        if found == len(self._ccpa):
            self._ccpa.append("CCPA" in profile.regimes)
        return found

    def _destination_id(self, service: str, ordered: tuple[str, ...]) -> int:
        namespace = service.split("/", 1)[0]
        records = self._index_transfers.get(service) or []
        transfers = json.dumps(records, sort_keys=True, separators=(",", ":"), default=str)
        actions = enforcement_class(self._index_enforcement, self._default_action, namespace)
        profile = self._classify(service)
        with self._lock:
            enforcement = self._enforcements.id_of(actions)
            self._namespace_of_enforcement.setdefault(enforcement, namespace)
            destination = Destination(
                profile=self._intern_profile(profile),
                target=ordered[0] if ordered else self.cluster,
                transfers=self._transfers.id_of(transfers),
                enforcement=enforcement,
                service=service if records else "",
            )
            return self._destinations.id_of(destination)

    def _key(self, source_profile: int, destination: int, opt_out: bool) -> AnswerKey:
        if opt_out and not self.coverage.opt_out_everywhere:
            ends = self._destinations.values[destination]
            opt_out = self._ccpa[source_profile] or self._ccpa[ends.profile]
        return (source_profile, destination, opt_out)

    def key_value(self, key: AnswerKey) -> tuple[Any, ...]:
        """A key by value (profiles, target, transfer records, enforcement), comparable across tables."""
        source, destination, opt_out = key
        ends: Destination = self._destinations.values[destination]
        return (
            self._profiles.values[source],
            self._profiles.values[ends.profile],
            ends.target,
            self._transfers.values[ends.transfers],
            self._enforcements.values[ends.enforcement],
            ends.service,
            opt_out,
        )

    def all_keys(self) -> list[AnswerKey]:
        """Every key the known services make, each once (a source profile x a destination x opt-out)."""
        sources = sorted(set(self._profile_of.values()))
        destinations = sorted(set(self._destination_of.values()))
        found: dict[AnswerKey, None] = {}
        for source in sources:
            for destination in destinations:
                for opt_out in (False, True):
                    found.setdefault(self._key(source, destination, opt_out))
        return list(found)

    # -- building ----------------------------------------------------------------------------------

    def compile(self, previous: DecisionTable | None = None) -> None:
        """Evaluate every key of the known services (reusing the previous table's where nothing they
        depend on changed), then mark the table complete."""
        started = time.perf_counter()
        if self.coverage.keyed:
            reusable: dict[tuple[Any, ...], KeyedAnswer] = {}
            if previous is not None and self._reusable_from(previous):
                reusable = previous.answers_by_value()
            day = self.today()
            for key in self.all_keys():
                known = reusable.get(self.key_value(key))
                if known is not None and known.day == day:
                    self._keyed[key] = dataclasses.replace(
                        known, decision=dataclasses.replace(known.decision, policy_revision=self.revision)
                    )
                    self.reused += 1
                else:
                    self._keyed_answer(key, day)
        self.build_seconds = time.perf_counter() - started
        self.complete = True

    def _reusable_from(self, previous: DecisionTable) -> bool:
        return (
            previous.coverage.keyed
            and previous.cluster == self.cluster
            and previous.decider.engine_name == self.decider.engine_name
            and previous.fingerprint == self.fingerprint
        )

    @property
    def fingerprint(self) -> str:
        found: str | None = getattr(self, "_fingerprint", None)
        if found is None:
            found = self._fingerprint = policy_fingerprint(self.policy, self.coverage)
        return found

    def answers_by_value(self) -> dict[tuple[Any, ...], KeyedAnswer]:
        """The key answers by key value (for a later table to reuse)."""
        return {self.key_value(key): answer for key, answer in list(self._keyed.items())}

    def _keyed_answer(self, key: AnswerKey, day: int) -> KeyedAnswer:
        known = self._keyed.get(key)
        if known is not None and known.day == day:
            return known
        source, destination, opt_out = key
        ends: Destination = self._destinations.values[destination]
        placeholder = ends.service or placeholder_service(self._namespace_of_enforcement[ends.enforcement])
        route = Route(
            service=placeholder,
            source=self.decider.endpoint(self.cluster, data=self._profiles.values[source]),
            destination=self.decider.endpoint(ends.target, data=self._profiles.values[ends.profile]),
            via=self._via,
            opt_out=opt_out,
        )
        now = datetime.fromtimestamp(self.clock(), UTC)
        decision = self.decider.decide(route, now=now)
        self.evaluations += 1
        answer = KeyedAnswer(decision, placeholder, rfc3339(now), int(now.timestamp()) // SECONDS_PER_DAY)
        if not _engine_failed(decision):  # an engine failure is not remembered: the next request tries again
            self._keyed[key] = answer
        return answer

    def today(self) -> int:
        """The UTC day number (days since 1970-01-01) an answer must hold for to be served."""
        return int(self.clock()) // SECONDS_PER_DAY

    @property
    def size(self) -> int:
        """How many key answers the table holds."""
        return len(self._keyed)

    @property
    def services(self) -> int:
        return len(self._ordered)

    @property
    def cached(self) -> int:
        """How many pair answers the LRU holds."""
        return len(self._pairs)

    # -- pairs -------------------------------------------------------------------------------------

    def pair_route(self, source_workload: str | None, destination: str, opt_out: bool) -> Route:
        """The route a pair is judged as: from here to the destination's most preferred cluster."""
        ordered = self._candidates(destination)
        target = ordered[0] if ordered else self.cluster
        return Route(
            service=destination,
            source=self.decider.endpoint(self.cluster, workload=source_workload, data=self._classify(source_workload)),
            destination=self.decider.endpoint(target, workload=destination, data=self._classify(destination)),
            via=self._via,
            opt_out=opt_out,
        )

    def _candidates(self, destination: str) -> tuple[str, ...]:
        known = self._ordered.get(destination)
        if known is not None:
            return known
        return preference_order(self._all_clusters, self.cluster, self._jurisdiction_of)

    def direct(
        self,
        source_key: str,
        source_workload: str | None,
        destination: str,
        opt_out: bool,
        *,
        known: bool = True,
        now: datetime | None = None,
    ) -> RouteAnswer:
        """The pair judged on its own through the Decider (one full evaluation), as before keys."""
        moment = now or datetime.fromtimestamp(self.clock(), UTC)
        decision = self.decider.decide(self.pair_route(source_workload, destination, opt_out), now=moment)
        return self._answer(
            decision,
            source_key,
            destination,
            opt_out,
            known,
            int(moment.timestamp()) // SECONDS_PER_DAY,
            rfc3339(moment),
        )

    def _answer(
        self,
        decision: Decision,
        source_key: str,
        destination: str,
        opt_out: bool,
        known: bool,
        day: int,
        moment: str,
    ) -> RouteAnswer:
        ordered = self._candidates(destination)
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
            day=day,
            moment=moment,
        )

    def _from_key(
        self,
        keyed: KeyedAnswer,
        source_key: str,
        source_workload: str | None,
        destination: str,
        opt_out: bool,
        known: bool,
    ) -> RouteAnswer:
        """A pair's answer from its key's answer: the service named, the digest of the pair's input."""
        template = keyed.decision
        violations = tuple(_named(v, keyed.placeholder, destination) for v in template.violations)
        digest = template.input_digest
        if not _engine_failed(template):
            digest = self.decider.input_digest(self.pair_route(source_workload, destination, opt_out), keyed.moment)
        decision = Decision(  # the constructor, not dataclasses.replace: this is the first-sight path
            decision_id=template.decision_id,
            outcome=template.outcome,
            enforcement=template.enforcement,
            violations=violations,
            permitted_clusters=template.permitted_clusters,
            policy_revision=template.policy_revision,
            engine=template.engine,
            latency_us=template.latency_us,
            regimes=template.regimes,
            patch=template.patch,
            warnings=template.warnings,
            input_digest=digest,
            extra=template.extra,
        )
        return self._answer(decision, source_key, destination, opt_out, known, keyed.day, keyed.moment)

    def _pair_key(self, source_key: str | None, workload: str | None, destination: str, opt_out: bool) -> AnswerKey:
        source = self._profile_of.get(source_key) if source_key is not None else None
        if source is None:
            source = self._profile_id(self._classify(workload))
        ends = self._destination_of.get(destination)
        if ends is None:
            ends = self._destination_id(destination, self._candidates(destination))
        return self._key(source, ends, opt_out)

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
        return service in self._ordered

    def lookup(self, identity: SourceIdentity, destination: str, opt_out: bool) -> RouteAnswer:
        """The answer for a caller and a destination service; judged at most once a day per key."""
        pair = (self._sources.get(identity.value) or identity.value, destination, opt_out)
        answer = self._pairs.get(pair)  # the known pair, inline: this is the per-request path
        if answer is not None and answer.day == int(self.clock()) // SECONDS_PER_DAY:
            try:  # noqa: SIM105 (contextlib.suppress costs a microsecond on this path)
                self._pairs.move_to_end(pair)
            except KeyError:  # evicted meanwhile by another thread
                pass
            return answer
        answer = self._resolve(identity, destination, opt_out, evaluate=True)
        assert answer is not None
        return answer

    def peek(self, identity: SourceIdentity, destination: str, opt_out: bool) -> RouteAnswer | None:
        """The answer when it needs no engine call (a pair seen today, or a key judged today), else None."""
        pair = (self._sources.get(identity.value) or identity.value, destination, opt_out)
        answer = self._pairs.get(pair)
        if answer is not None and answer.day == int(self.clock()) // SECONDS_PER_DAY:
            try:  # noqa: SIM105 (contextlib.suppress costs a microsecond on this path)
                self._pairs.move_to_end(pair)
            except KeyError:  # evicted meanwhile by another thread
                pass
            return answer
        return self._resolve(identity, destination, opt_out, evaluate=False)

    def _resolve(
        self, identity: SourceIdentity, destination: str, opt_out: bool, *, evaluate: bool
    ) -> RouteAnswer | None:
        known_source = self._sources.get(identity.value)
        pair: TableKey = (known_source or identity.value, destination, opt_out)
        answer = self._cached(pair)
        if answer is not None:
            return answer
        known = known_source is not None and destination in self._ordered
        workload = known_source if known_source is not None else identity.workload
        if self.coverage.keyed:
            key = self._pair_key(known_source, workload, destination, opt_out)
            day = self.today()
            keyed = self._keyed.get(key)
            if keyed is None or keyed.day != day:
                if not evaluate:
                    return None
                keyed = self._keyed_answer(key, day)
            answer = self._from_key(keyed, pair[0], workload, destination, opt_out, known)
        elif not evaluate:
            return None
        else:
            answer = self.direct(pair[0], workload, destination, opt_out, known=known)
            self.evaluations += 1
        if _engine_failed(answer.decision) or not (self.coverage.keyed or self.decider.cache_by_date):
            return answer  # not remembered: an engine failure, or rules that read more than the date
        with self._lock:
            self._pairs[pair] = answer
            self._pairs.move_to_end(pair)
            while len(self._pairs) > self.cache_size:
                self._pairs.popitem(last=False)
        return answer

    def _cached(self, pair: TableKey) -> RouteAnswer | None:
        # Each OrderedDict operation is atomic under the GIL; the lock only orders insert-and-evict.
        answer = self._pairs.get(pair)
        if answer is None:
            return None
        if answer.day != int(self.clock()) // SECONDS_PER_DAY:
            self._pairs.pop(pair, None)
            return None
        try:  # noqa: SIM105 (contextlib.suppress costs a microsecond on this path)
            self._pairs.move_to_end(pair)
        except KeyError:  # evicted meanwhile by another thread
            pass
        return answer


def _named(violation: Violation, placeholder: str, service: str) -> Violation:
    """The violation with the destination service's name where the keyed evaluation had the placeholder."""
    if placeholder == service or not any(
        PLACEHOLDER_NAME in text for text in (violation.message, violation.remedy, violation.article, violation.service)
    ):
        return violation
    return dataclasses.replace(
        violation,
        service=service if violation.service == placeholder else violation.service,
        article=violation.article.replace(placeholder, service),
        message=violation.message.replace(placeholder, service),
        remedy=violation.remedy.replace(placeholder, service),
    )


def _engine_failed(decision: Decision) -> bool:
    extra: Any = decision.extra or {}
    return bool(extra.get("engine_error")) or any(v.rule == "engine-error" for v in decision.violations)
