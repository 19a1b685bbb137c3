"""The live routing filter: the current decision table, rebuilt on policy reload, and the verdicts.

`RoutingFilter.on_reload(snapshot)` is the server's reload listener: it indexes the new policy at once
(so a request is never judged against no policy), compiles the table in a background thread (reusing
the current table's key answers that the change does not touch) and swaps it in atomically when it is
complete; a slower build of an older snapshot never replaces a newer one. `status()` says which
revision is served and whether its table is complete (the `/readyz` detail and
`policyengine_routing_table_complete`). `judge` turns an
`AuthzRequest` into a `Verdict`: a fresh Decision (new decision_id) from a table lookup, the chosen
cluster, and the HTTP answer for the proxy. Nothing here does I/O besides the engine calls of the table.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from policyengine.decide import new_decision_id
from policyengine.decision import Decision, Enforcement, Outcome, Violation
from policyengine.routing import metrics
from policyengine.routing.adapters import (
    CLUSTER_HEADER,
    DECISION_ID_HEADER,
    DEFAULT_SOURCE_HEADER,
    DENIAL_HEADER,
    AuthzRequest,
    denial_body,
    denial_header,
)
from policyengine.routing.table import DEFAULT_CACHE_SIZE, DecisionTable, RouteAnswer

if TYPE_CHECKING:
    from policyengine.decide import Decider
    from policyengine.policy import LoadedPolicy

log = logging.getLogger(__name__)


class PolicySnapshot(Protocol):
    """What the server's reload listener hands over (`AppState.snapshot`)."""

    @property
    def policy(self) -> LoadedPolicy: ...

    @property
    def decider(self) -> Decider: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """One judged request: the HTTP answer for the proxy and what goes into the audit row."""

    status: int  # 200 or 403
    headers: dict[str, str]
    body: dict[str, Any]
    decision: Decision  # what the audit row records (a deny naming the problem for unjudgeable requests)
    service: str = ""
    destination_cluster: str = ""
    answer: RouteAnswer | None = field(default=None, repr=False)

    @property
    def allowed(self) -> bool:
        return self.status == 200


class RoutingFilter:
    """Holds the current `DecisionTable` for the cluster the filter runs in and judges requests."""

    def __init__(
        self, cluster: str, source_header: str = DEFAULT_SOURCE_HEADER, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> None:
        self.cluster = cluster
        self.source_header = source_header.lower()
        self.cache_size = cache_size
        self._table: DecisionTable | None = None
        self._generation = 0
        self._lock = threading.Lock()
        self._builds: list[threading.Thread] = []
        self._building: DecisionTable | None = None

    @property
    def table(self) -> DecisionTable | None:
        """The table requests are judged against now (None before the first policy)."""
        return self._table

    def on_reload(self, snapshot: PolicySnapshot) -> None:
        """Reload listener: index the snapshot now, compile it in the background, swap when done."""
        table = DecisionTable(snapshot.policy, snapshot.decider, self.cluster, self.cache_size)
        with self._lock:
            self._generation += 1
            generation = self._generation
            previous = self._table
            if self._table is None:
                self._table = table  # judge first requests through the engine until compiled
        self._building = table
        metrics.table_building(table.revision)
        thread = threading.Thread(
            target=self._compile,
            args=(table, generation, previous),
            name=f"routing-table-{generation}",
            daemon=True,
        )
        self._builds = [t for t in self._builds if t.is_alive()] + [thread]
        thread.start()

    def _compile(self, table: DecisionTable, generation: int, previous: DecisionTable | None) -> None:
        try:
            table.compile(previous)
        except Exception:  # a bug in a build must not take the filter down: keep the previous table
            log.exception("routing table build for %s failed; keeping the previous table", table.revision)
            return
        with self._lock:
            current = generation == self._generation
            if current or self._table is None or self._table is table:
                self._table = table
        if current:
            metrics.table_complete(table.revision)
        log.info(  # the reload itself is logged once, by the server, with the new revision
            "routing table for %s complete: %d services, %d answers (%d evaluated, %d reused) in %.1f ms%s",
            table.revision,
            table.services,
            table.size,
            table.evaluations,
            table.reused,
            table.build_seconds * 1e3,
            "" if table.coverage.keyed else f"; every pair judged on its own ({table.coverage.reason})",
        )

    def install(self, snapshot: PolicySnapshot) -> DecisionTable:
        """Compile the snapshot's table in this thread and make it current (startup, tests, benches)."""
        table = DecisionTable.build(
            snapshot.policy, snapshot.decider, self.cluster, self.cache_size, previous=self._table
        )
        with self._lock:
            self._generation += 1
            self._table = table
        self._building = table
        metrics.table_complete(table.revision)
        return table

    def status(self) -> dict[str, Any]:
        """Which revision requests are judged against, whether its table is complete, and any build."""
        table = self._table
        if table is None:
            return {"complete": False, "revision": None}
        status: dict[str, Any] = {
            "complete": table.complete,
            "revision": table.revision,
            "services": table.services,
            "answers": table.size,
            "keyed": table.coverage.keyed,
        }
        if not table.coverage.keyed:
            status["per_pair_reason"] = table.coverage.reason
        building = self._building
        if building is not None and building is not table and not building.complete:
            status["building"] = building.revision
        return status

    def wait_for_builds(self, timeout: float = 30.0) -> None:
        """Block until background builds started so far have finished."""
        deadline = time.monotonic() + timeout
        for thread in list(self._builds):
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- judging -----------------------------------------------------------------------------------

    def judge_compiled(self, request: AuthzRequest) -> Verdict | None:
        """The verdict when it needs no engine call (compiled or cached pair, or a refusal), else None."""
        table = self._table
        if table is None:
            return self.judge(request)
        destination = table.destination_of(request.host)
        if destination is None:
            return self.judge(request)
        started = time.perf_counter()
        answer = table.peek(request.source, destination, request.opt_out)
        if answer is None:
            return None
        return self.verdict(answer, request.prefer, started)

    def judge(self, request: AuthzRequest) -> Verdict:
        """Judge one request: allowed with the preferred permitted cluster, or refused with the reason."""
        started = time.perf_counter()
        table = self._table
        if table is None:
            return refusal(
                "policyengine has not loaded a policy yet",
                remedy="wait for /readyz, then retry",
            )
        destination = table.destination_of(request.host)
        if destination is None:
            return refusal(
                f"host {request.host!r} is not a known service",
                where="Host",
                source=request.source.value,
                remedy="add the host to the service's hosts in policies/services.yaml",
                policy_revision=table.revision,
                service=request.host,  # what the caller asked for, so the row names it
            )
        answer = table.lookup(request.source, destination, request.opt_out)
        return self.verdict(answer, request.prefer, started)

    def verdict(self, answer: RouteAnswer, prefer: str | None, started: float) -> Verdict:
        """The verdict for a table answer: a fresh Decision and the proxy's headers and body."""
        template = answer.decision
        chosen = answer.cluster
        if chosen is not None and prefer is not None and prefer in answer.clusters:
            chosen = prefer
        outcome = template.outcome
        if chosen is not None and outcome is Outcome.DENY and chosen in template.permitted_clusters:
            outcome = Outcome.REWRITE  # the filter sent the request to a permitted cluster instead
        extra = {
            "table": "compiled" if answer.known else "first-sight",
            "source": answer.source,
            "opt_out": answer.opt_out,
            "chosen_cluster": chosen or "",
            "engine_latency_us": template.latency_us,
        }
        if prefer is not None:
            extra["preferred_cluster"] = prefer
        decision = dataclasses.replace(
            template,
            decision_id=new_decision_id(),
            outcome=outcome,
            latency_us=(time.perf_counter() - started) * 1e6,
            extra=extra,
        )
        if answer.allowed and chosen is not None:
            headers = {CLUSTER_HEADER: chosen, DECISION_ID_HEADER: decision.decision_id}
            if answer.warned:
                headers["x-policyengine-warning"] = "; ".join(
                    f"{v.regime} {v.article}" for v in template.violations
                )[:512]
            body = {
                "allowed": True,
                "cluster": chosen,
                "decision_id": decision.decision_id,
                "clusters": list(answer.clusters),
                "source": answer.source,
                "destination": answer.destination,
            }
            return Verdict(200, headers, body, decision, answer.destination, chosen, answer)
        if template.violations:
            why = template.violations[0].message
        else:
            why = f"{', '.join(template.regimes) or 'the policy'} permits none of its clusters here"
        body = denial_body(
            f"{answer.destination} may not be called from {answer.source} in {self.cluster}: {why}",
            decision=decision,
            source=answer.source,
            destination=answer.destination,
        )
        headers = {DECISION_ID_HEADER: decision.decision_id, DENIAL_HEADER: denial_header(body)}
        # The row names the route judged (the caller's cluster -> the destination the rules were asked
        # about), not the end a violation found unpermitted (that is the violation's `cluster`).
        judged = template.violations[0] if template.violations else None
        target = (judged.destination or judged.cluster) if judged is not None else ""
        return Verdict(403, headers, body, decision, answer.destination, target, answer)


def refusal(
    reason: str,
    *,
    source: str | None = None,
    remedy: str | None = None,
    where: str = "",
    policy_revision: str = "",
    service: str = "",
) -> Verdict:
    """A 403 for a request that could not be judged (fail closed), with a deny Decision to audit."""
    text = f"{where}: {reason}" if where else reason
    decision = Decision(
        decision_id=new_decision_id(),
        outcome=Outcome.DENY,
        enforcement=Enforcement.DENY,
        violations=(
            Violation(
                regime="REQUEST",
                rule="unjudgeable-request",
                article="policyengine: a request the filter cannot judge is refused (fail closed)",
                message=text,
                remedy=remedy or "",
            ),
        ),
        permitted_clusters=(),
        policy_revision=policy_revision,
        engine="none",
        latency_us=0.0,
        extra={"source": source or ""},
    )
    body = denial_body(text, decision=decision, source=source, remedy=remedy)
    headers = {DECISION_ID_HEADER: decision.decision_id, DENIAL_HEADER: denial_header(body)}
    return Verdict(403, headers, body, decision, service)
