"""Routing filter endpoints: /v1/decide and /v1/authz (Envoy ext_authz HTTP, nginx auth_request).

`POST /v1/decide` takes a route as JSON and answers the Decision, for callers that are not proxies.
`/v1/authz` and `/v1/authz/<original path>` (any method) answer a proxy: 200 with
`x-policyengine-cluster` and `x-policyengine-decision-id`, or 403 with the reason. Every answer of
either endpoint is an audit row (source `routing`), written before the answer goes out. Nothing here
answers 500: a request that cannot be parsed, judged or audited is refused with a 403 (authz) or a 4xx
naming the problem (decide).

The filter attaches itself to the server's `AppState` (`app.state.pe`) when the app starts (this
router's lifespan) or, at the latest, on the first request: it registers a reload listener that rebuilds
the decision table in the background.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from policyengine.api import access, metrics, openapi
from policyengine.api.body import BodyProblem, read_json
from policyengine.audit.record import AuditRecord
from policyengine.decision import Decision
from policyengine.route import DataProfile, PiplVolume, Route
from policyengine.routing.adapters import DENIAL_HEADER, denial_header, read_authz_request
from policyengine.routing.filter import PolicySnapshot, RoutingFilter, Verdict, refusal
from policyengine.routing.identity import RequestProblem

log = logging.getLogger(__name__)

MAX_DECIDE_BODY = 64 * 1024
DEFAULT_BODY_SECONDS = 10.0
T = TypeVar("T")
FILTER_ATTRIBUTE = "routing_filter"


class ServerState(Protocol):
    """The part of `AppState` (`app.state.pe`) the routing endpoints use."""

    @property
    def snapshot(self) -> PolicySnapshot: ...  # raises PolicyNotLoaded before the first load

    @property
    def loaded(self) -> bool: ...

    @property
    def settings(self) -> Any: ...

    @property
    def audit(self) -> Any: ...

    def add_reload_listener(self, listener: Callable[[Any], None]) -> None: ...

    async def run_evaluation(self, fn: Callable[[], T]) -> T: ...


_attach_lock = threading.Lock()


def routing_filter_of(app: FastAPI) -> RoutingFilter | None:
    """The app's routing filter, attaching it to `app.state.pe` on first use; None without a server state."""
    existing: RoutingFilter | None = getattr(app.state, FILTER_ATTRIBUTE, None)
    if existing is not None:
        return existing
    state: ServerState | None = getattr(app.state, "pe", None)
    if state is None:
        return None
    with _attach_lock:
        existing = getattr(app.state, FILTER_ATTRIBUTE, None)
        if existing is not None:
            return existing
        settings = state.settings
        routing = RoutingFilter(
            cluster=str(settings.cluster),
            source_header=settings.authz_source_header,
        )
        state.add_reload_listener(routing.on_reload)  # called at once too when a policy is loaded
        setattr(app.state, FILTER_ATTRIBUTE, routing)
        return routing


@asynccontextmanager
async def _attach_on_startup(app: FastAPI) -> AsyncIterator[None]:
    routing_filter_of(app)
    yield


router = APIRouter(lifespan=_attach_on_startup)


# -- /v1/authz ---------------------------------------------------------------------------------------


def _response(verdict: Verdict) -> Response:
    return JSONResponse(verdict.body, status_code=verdict.status, headers=verdict.headers)


def _observed(endpoint: str, decision: Decision, started: float) -> None:
    """Count the answer and its latency (policyengine_routing_requests_total / _duration_seconds)."""
    outcome = str(decision.outcome)
    metrics.child(metrics.ROUTING_REQUESTS, endpoint, outcome).inc()
    metrics.child(metrics.ROUTING_DURATION, endpoint, outcome).observe(time.perf_counter() - started)


def _answered(verdict: Verdict, started: float) -> Response:
    _observed("authz", verdict.decision, started)
    return _response(verdict)


async def _audited(request: Request, verdict: Verdict) -> Verdict:
    """Write the verdict's audit row; refuse (fail closed) when the trail cannot take it."""
    state: ServerState | None = getattr(request.app.state, "pe", None)
    writer = state.audit if state is not None else None
    if writer is None:
        return verdict
    cluster = str(state.settings.cluster) if state is not None else ""
    record = AuditRecord(
        source="routing",
        decision=verdict.decision,
        cluster=cluster,
        service=verdict.service,
        source_cluster=cluster,
        destination_cluster=verdict.destination_cluster,
        operation="AUTHZ",
        user=str(verdict.decision.extra.get("source", "")),
    )
    try:
        await writer.record_async(record)
    except Exception as exc:  # the writer's own errors and anything else: refuse, never 500
        log.error("routing audit row for %s not written: %s", verdict.decision.decision_id, exc)
        return _unrecorded(
            f"the audit trail could not record this decision: {exc}",
            remedy="check the audit database and spool (policyengine serve logs), then retry",
            policy_revision=verdict.decision.policy_revision,
            service=verdict.service,
        )
    return verdict


def _unrecorded(reason: str, *, remedy: str, policy_revision: str, service: str) -> Verdict:
    """A refusal (fail closed) for a decision the trail could not take: it names no decision id, since
    every id given out must be one the trail holds."""
    refused = refusal(reason, remedy=remedy, policy_revision=policy_revision, service=service)
    body = {k: v for k, v in refused.body.items() if k != "decision_id"}
    headers = {DENIAL_HEADER: denial_header(body)}
    return Verdict(refused.status, headers, body, refused.decision, service)


async def _authz(request: Request, path: str) -> Response:
    started = time.perf_counter()
    refused = access.refusal(request, access.API)
    if refused is not None:
        return refused
    routing = routing_filter_of(request.app)
    if routing is None:
        verdict = refusal(
            "the routing filter is not attached to a server state", remedy="start with policyengine serve"
        )
        return _answered(verdict, started)
    try:
        parsed = read_authz_request(request.headers, request.method, path, routing.source_header)
    except RequestProblem as problem:
        table = routing.table
        verdict = refusal(
            problem.what,
            where=problem.where,
            remedy=problem.remedy,
            policy_revision=table.revision if table is not None else "",
        )
        return _answered(await _audited(request, verdict), started)
    try:
        fast = routing.judge_compiled(parsed)  # a dict lookup: stays on the event loop
        if fast is not None:
            verdict = fast
        else:  # a pair the table does not list: one engine call, off the loop
            state: ServerState | None = getattr(request.app.state, "pe", None)
            if state is not None:
                verdict = await state.run_evaluation(lambda: routing.judge(parsed))
            else:
                verdict = routing.judge(parsed)
    except Exception as exc:  # a bug must still fail closed with a reason
        log.exception("routing filter could not judge %s -> %s", parsed.source.value, parsed.host)
        verdict = refusal(f"the filter could not judge this request: {exc}", source=parsed.source.value)
    return _answered(await _audited(request, verdict), started)


_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("/v1/authz", methods=_METHODS, openapi_extra=openapi.AUTHZ)
async def authz_root(request: Request) -> Response:
    """nginx auth_request (GET with X-Original-URI) or Envoy ext_authz for the path `/`."""
    return await _authz(request, "")


@router.api_route("/v1/authz/{path:path}", methods=_METHODS, openapi_extra=openapi.AUTHZ_PATH)
async def authz_path(request: Request) -> Response:
    """Envoy ext_authz HTTP service: the original request's path under the `/v1/authz` prefix."""
    return await _authz(request, str(request.path_params.get("path", "")))


# -- /v1/decide --------------------------------------------------------------------------------------


class PiplIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    volume: int | None = Field(default=None, ge=0)
    sensitive_volume: int | None = Field(default=None, ge=0)
    ciio: bool = False


class DataIn(BaseModel):
    """What one end holds; regimes are derived from the policy, never taken from the caller."""

    model_config = ConfigDict(extra="forbid")
    data_classes: list[str] = Field(default_factory=list, max_length=32)
    subjects: list[str] = Field(default_factory=list, max_length=64)
    pipl: PiplIn | None = None


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cluster: str = Field(min_length=1, max_length=128)  # the audit trail keeps cluster names of 128
    workload: str | None = Field(default=None, max_length=253, pattern=r"^[^/\s]+/[^/\s]+$")
    data: DataIn | None = None  # omitted: classified from `workload` by the policy repo


class RouteIn(BaseModel):
    """A route to judge, as `POST /v1/decide` takes it."""

    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=3, max_length=253, pattern=r"^[^/\s]+/[^/\s]+$")
    source: EndpointIn
    destination: EndpointIn
    via: str = Field(default="POST /v1/decide", max_length=512)
    opt_out: bool = False


DECIDE_REMEDY = 'send {"service": "ns/name", "source": {"cluster": ...}, "destination": {"cluster": ...}}'


def _problem(
    status: int,
    what: str,
    remedy: str,
    problems: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"error": what, "remedy": remedy}
    if problems:
        body["problems"] = problems
    return JSONResponse(body, status_code=status, headers=headers)


def _profile(snapshot: PolicySnapshot, end: EndpointIn, default_workload: str | None) -> DataProfile:
    policy = snapshot.policy
    if end.data is not None:
        pipl = end.data.pipl
        return DataProfile(
            data_classes=tuple(sorted(set(end.data.data_classes))),
            subjects=tuple(sorted(set(end.data.subjects))),
            regimes=tuple(policy.regimes_for(tuple(end.data.subjects), tuple(end.data.data_classes))),
            pipl=PiplVolume(pipl.volume, pipl.sensitive_volume, pipl.ciio) if pipl is not None else None,
        )
    workload = end.workload or default_workload
    if not workload:
        return DataProfile()
    namespace, name = workload.split("/", 1)
    return policy.classify(namespace, name, {}, {})


@router.post("/v1/decide", openapi_extra=openapi.ROUTE)
async def decide(request: Request) -> Response:
    """Judge one route (JSON body, see `RouteIn`) and answer its Decision; the decision is audited."""
    started = time.perf_counter()
    refused = access.refusal(request, access.API)
    if refused is not None:
        return refused
    settings = getattr(getattr(request.app.state, "pe", None), "settings", None)
    seconds = float(getattr(settings, "body_timeout_seconds", DEFAULT_BODY_SECONDS))
    try:
        raw = await read_json(request, MAX_DECIDE_BODY, seconds, remedy="send one route")
    except BodyProblem as exc:
        return _problem(
            exc.status, exc.what, exc.remedy or DECIDE_REMEDY, [{"where": exc.where, "what": exc.what}], exc.headers
        )
    try:
        route_in = RouteIn.model_validate(raw)
    except ValidationError as exc:
        problems = [
            {"where": ".".join(str(p) for p in err["loc"]) or "(body)", "what": err["msg"]}
            for err in exc.errors()
        ]
        return _problem(422, "the body is not a route", DECIDE_REMEDY, problems)
    state: ServerState | None = getattr(request.app.state, "pe", None)
    if state is None or not state.loaded:
        return _problem(503, "no policy is loaded yet", "wait for /readyz, then retry")
    snapshot = state.snapshot
    decider = snapshot.decider
    try:
        route = Route(
            service=route_in.service,
            source=decider.endpoint(
                route_in.source.cluster,
                workload=route_in.source.workload,
                data=_profile(snapshot, route_in.source, None),
            ),
            destination=decider.endpoint(
                route_in.destination.cluster,
                workload=route_in.destination.workload or route_in.service,
                data=_profile(snapshot, route_in.destination, route_in.service),
            ),
            via=route_in.via,
            opt_out=route_in.opt_out,
        )
    except (ValueError, KeyError) as exc:
        return _problem(422, f"the route cannot be built: {exc}", "check the data classes and subjects")
    decision = await state.run_evaluation(lambda: decider.decide(route))
    verdict = Verdict(
        status=200,
        headers={},
        body={},
        decision=decision,
        service=route.service,
        destination_cluster=route.destination.cluster,
    )
    audited = await _audited(request, verdict)
    if audited is not verdict:
        return _problem(
            503, str(audited.body.get("reason", "audit failed")), "check the audit database, then retry"
        )
    _observed("decide", decision, started)
    return JSONResponse(_decision_json(decision))


def _decision_json(decision: Decision) -> dict[str, Any]:
    raw = decision.to_dict()
    return json.loads(json.dumps(raw, default=str))
