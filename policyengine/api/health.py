"""`/healthz` (alive: the event loop runs and decisions can be made durable somewhere), `/readyz` (policy
loaded, rows can be made durable in the database or the spool, engine ready; in its detail, the routing
table's revision and whether it is complete), `/metrics`.

A replica whose audit database is down but whose spool has room stays ready (the spool covers the
outage; `/readyz` says `degraded`); one that can make rows durable nowhere (spool full or unwritable,
audit committer gone) is neither ready nor live, so the kubelet restarts it.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from policyengine.api import access, metrics
from policyengine.api.state import AppState

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    """Liveness: 200 while the event loop runs and audit rows can be made durable (database or spool)."""
    state: AppState = request.app.state.pe
    alive, problem = state.alive()
    if not alive:
        return JSONResponse({"status": "not alive", "problem": problem}, status_code=503)
    return JSONResponse({"status": "alive"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Readiness: 200 when a policy is loaded, audit rows can be made durable and the engine is ready."""
    state: AppState = request.app.state.pe
    ready, checks = state.readiness()
    routing = getattr(request.app.state, "routing_filter", None)
    if routing is not None:  # detail only: an incomplete table still answers, judging keys on first sight
        checks["routing_table"] = routing.status()
    metrics.READY.set(1 if ready else 0)
    body = {"status": "ready" if ready else "not ready", "cluster": state.settings.cluster, "checks": checks}
    headers = {"x-policyengine-worker": str(os.getpid())}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition, summed over every worker process (API credentials when configured)."""
    state: AppState = request.app.state.pe
    if not state.settings.metrics_on_https:
        where = f" on port {state.settings.metrics_port}" if state.settings.metrics_port is not None else ""
        return JSONResponse(
            {"error": f"/metrics is not served on the HTTPS port: it is served over plain HTTP{where}"},
            status_code=404,
        )
    refused = access.refusal(request, access.API)
    if refused is not None:
        return refused
    state.refresh_gauges()
    payload, content_type = metrics.exposition()
    return Response(payload, media_type=content_type)
