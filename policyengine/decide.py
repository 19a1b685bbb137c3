"""Decide routes: build the Rego input for a route, evaluate it, return a Decision.

This is the one entry point to the rules. It never raises for a route: an engine failure becomes a
deny whose violation carries the reason (fail closed).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from policyengine.decision import Decision, Enforcement, Outcome, Violation
from policyengine.decision_cache import DecisionCache, reads_only_the_date
from policyengine.engine.base import DECISION_QUERY, Engine, EngineError
from policyengine.policy import LoadedPolicy
from policyengine.route import DataProfile, Endpoint, PiplVolume, Route
from policyengine.routing.keys import coverage

EXPLAIN_QUERY = "data.policyengine.explain.result"
DEFAULT_CACHE_SIZE = 8192
ENDPOINT_MEMO = 4096
_string = json.encoder.encode_basestring_ascii  # a JSON string literal, as json.dumps writes it


def serving_modules(modules: Mapping[str, str]) -> dict[str, str]:
    """The modules that decide: every module except the `*_test.rego` unit tests."""
    return {path: source for path, source in modules.items() if not path.endswith("_test.rego")}


def rfc3339(moment: datetime) -> str:
    """UTC timestamp in the fixed format the rules read (seconds precision, `Z`)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def new_decision_id() -> str:
    """A random (version 4) UUID. Decision ids need to be unique, not secret, so they come from the
    process's PRNG (reseeded after fork) rather than a system call per decision."""
    text = "%032x" % (random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


# The version (4) and variant (RFC 4122) bits of a random UUID, as uuid.UUID(int=..., version=4) sets them.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def _pipl(volume: PiplVolume | None) -> dict[str, Any] | None:
    if volume is None:
        return None
    return {"volume": volume.volume, "sensitive_volume": volume.sensitive_volume, "ciio": volume.ciio}


def _endpoint_input(end: Endpoint) -> dict[str, Any]:
    return {
        "cluster": end.cluster,
        "workload": end.workload,
        "region": end.region,
        "jurisdiction": end.jurisdiction,
        "entity": end.entity,
        "regimes": list(end.data.regimes),
        "data_classes": list(end.data.data_classes),
        "subjects": list(end.data.subjects),
        "origin": list(end.data.origin),
        "pipl": _pipl(end.data.pipl),
    }


def route_input(route: Route, now: datetime) -> dict[str, Any]:
    """The Rego input document for a route (docs/policy-repo.md, "The Rego input")."""
    return {
        "route": {
            "service": route.service,
            "namespace": route.namespace,
            "via": route.via,
            "source": _endpoint_input(route.source),
            "destination": _endpoint_input(route.destination),
        },
        "opt_out": route.opt_out,
        "time": rfc3339(now),
    }


def engine_error_decision(
    reason: str, route: Route, policy_revision: str, engine: str, latency_us: float, digest: str
) -> Decision:
    """Fail closed: an engine that cannot answer refuses the route, saying why."""
    violation = Violation(
        regime="ENGINE",
        rule="engine-error",
        article="policyengine: an undecidable route is refused",
        message=f"the Rego engine could not decide {route.service} {route.source.cluster} -> "
        f"{route.destination.cluster}: {reason}",
        remedy="fix the policy or the engine (see `policyengine policy lint` and `policyengine test`), then retry",
        cluster=route.destination.cluster,
        enforcement=Enforcement.DENY.value,
        service=route.service,
        source=route.source.cluster,
        destination=route.destination.cluster,
    )
    return Decision(
        decision_id=new_decision_id(),
        outcome=Outcome.DENY,
        enforcement=Enforcement.DENY,
        violations=(violation,),
        permitted_clusters=(),
        policy_revision=policy_revision,
        engine=engine,
        latency_us=latency_us,
        input_digest=digest,
    )


class Decider:
    """Evaluates routes against one loaded policy on one engine (thread-safe; engines are per thread)."""

    def __init__(self, policy: LoadedPolicy, engine: Engine, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.policy = policy
        self.engine = engine
        self.revision = policy.revision
        modules = serving_modules(policy.modules)
        engine.load(modules, policy.data)
        self.cache: DecisionCache[Decision] = DecisionCache(cache_size)
        self.cache_by_date = reads_only_the_date(modules)
        # The bundled rules never read `input.route.via` (the object and path that made the route), so
        # routes that differ only there share an answer (`check` over many objects naming the same
        # services); when a custom module reads more than the routing keys cover, `via` stays in the key.
        self.cache_by_via = not coverage(modules).keyed
        self._endpoints: dict[Endpoint, str] = {}
        self._ends: dict[tuple[str, str | None, DataProfile | None], Endpoint] = {}
        self._json_of_memoized: dict[int, str] = {}  # id() of an Endpoint held in _ends -> its JSON

    @property
    def engine_name(self) -> str:
        return self.engine.name

    def endpoint(self, cluster: str, workload: str | None = None, data: DataProfile | None = None) -> Endpoint:
        """An Endpoint whose region, jurisdiction and entity come from the policy repo (never the caller).

        Ends repeat (a cluster, a service and its data), so the same arguments give the same object."""
        key = (cluster, workload, data)
        known = self._ends.get(key)
        if known is not None:
            return known
        info = self.policy.cluster_info(cluster)
        end = Endpoint(
            cluster=cluster,
            workload=workload,
            data=data or DataProfile(),
            region=info.region if info else None,
            jurisdiction=info.jurisdiction if info else None,
            entity=info.entity if info else None,
        )
        if len(self._ends) < ENDPOINT_MEMO:
            self._ends[key] = end
            self._json_of_memoized[id(end)] = json.dumps(_endpoint_input(end), separators=(",", ":"))
        return end

    def decide(self, route: Route, *, now: datetime | None = None) -> Decision:
        """Evaluate one route. Never raises: engine errors become a deny with the reason.

        A route already decided under this policy (same input, same day) is answered from the cache;
        it still gets its own decision_id, digest and latency.
        """
        started = time.perf_counter()
        source, destination = self._endpoint_json(route.source), self._endpoint_json(route.destination)
        route_json = (
            f'{{"service":{_string(route.service)},"namespace":{_string(route.namespace)},'
            f'"via":{_string(route.via)},"source":{source},"destination":{destination}}}'
        )
        opt_out = "true" if route.opt_out else "false"
        moment = rfc3339(now or datetime.now(UTC))
        payload = f'{{"route":{route_json},"opt_out":{opt_out},"time":"{moment}"}}'
        digest = "sha256:" + hashlib.sha256(payload.encode()).hexdigest()
        day = moment[:10] if self.cache_by_date else moment
        key = (route_json, opt_out, day) if self.cache_by_via else (route.service, source, destination, opt_out, day)
        known = self.cache.get(key)
        if known is None:
            try:
                known = self._decision(self.engine.evaluate(DECISION_QUERY, payload), "", route)
            except (EngineError, KeyError, TypeError, ValueError) as exc:
                latency = (time.perf_counter() - started) * 1e6
                return engine_error_decision(str(exc), route, self.revision, self.engine.name, latency, digest)
            self.cache.put(key, known)
        return Decision(
            decision_id=new_decision_id(),
            outcome=known.outcome,
            enforcement=known.enforcement,
            violations=known.violations,
            permitted_clusters=known.permitted_clusters,
            policy_revision=known.policy_revision,
            engine=known.engine,
            latency_us=(time.perf_counter() - started) * 1e6,
            regimes=known.regimes,
            input_digest=digest,
        )

    def input_digest(self, route: Route, moment: str) -> str:
        """The digest `decide` gives the input of `route` at `moment` (RFC 3339, as `rfc3339` writes it)."""
        opt_out = "true" if route.opt_out else "false"
        payload = f'{{"route":{self._route_json(route)},"opt_out":{opt_out},"time":"{moment}"}}'
        return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()

    def _route_json(self, route: Route) -> str:
        return (
            f'{{"service":{_string(route.service)},"namespace":{_string(route.namespace)},'
            f'"via":{_string(route.via)},"source":{self._endpoint_json(route.source)},'
            f'"destination":{self._endpoint_json(route.destination)}}}'
        )

    def _endpoint_json(self, end: Endpoint) -> str:
        """The input JSON of an endpoint; ends repeat (a cluster and a service's data), so it is kept.

        Ends made by `endpoint` stay alive in its memo, so their identity is a safe (and cheaper than
        hashing every field) key."""
        text = self._json_of_memoized.get(id(end))
        if text is not None:
            return text
        text = self._endpoints.get(end)
        if text is None:
            text = json.dumps(_endpoint_input(end), separators=(",", ":"))
            if len(self._endpoints) < ENDPOINT_MEMO:
                self._endpoints[end] = text
        return text

    def _decision(self, answer: Any, digest: str, route: Route | None = None) -> Decision:
        """The Decision of the rules' answer; each violation names `route` (the cache key holds the
        route, so a cached decision's violations name the route it is served for)."""
        if not isinstance(answer, dict) or "allowed" not in answer:
            raise ValueError(f"the rules answered {str(answer)[:200]!r}, not a decision object")
        judged: dict[str, str] = {}
        if route is not None:
            judged = {
                "service": route.service,
                "source": route.source.cluster,
                "destination": route.destination.cluster,
            }
        violations = tuple(
            sorted(
                (Violation.from_dict({**v, **judged}) for v in answer.get("violations") or ()),
                key=lambda v: (v.regime, v.cluster, v.rule),
            )
        )
        permitted = tuple(sorted(answer.get("permitted_clusters") or ()))
        enforcement = Enforcement(answer.get("enforcement") or Enforcement.DENY.value)
        if answer["allowed"] is True:
            outcome = Outcome.ALLOW
        elif enforcement is Enforcement.REWRITE and permitted:
            outcome = Outcome.REWRITE
        else:
            outcome = Outcome.DENY
        return Decision(
            decision_id="",  # each served decision gets its own id
            outcome=outcome,
            enforcement=enforcement,
            violations=violations,
            permitted_clusters=permitted,
            policy_revision=self.revision,
            engine=self.engine.name,
            latency_us=0.0,
            regimes=tuple(answer.get("regimes") or ()),
            input_digest=digest,
        )

    def explain(self, route: Route, *, now: datetime | None = None) -> dict[str, Any]:
        """The step-by-step evidence for a route (raises EngineError: explain is interactive)."""
        payload = json.dumps(route_input(route, now or datetime.now(UTC)), sort_keys=True)
        result = self.engine.evaluate(EXPLAIN_QUERY, payload)
        if not isinstance(result, dict):
            raise EngineError(f"{EXPLAIN_QUERY} answered {result!r}")
        return result
