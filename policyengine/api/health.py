"""`/healthz` (process alive), `/readyz` (policy loaded, audit store answers, engine ready), `/metrics`."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from policyengine.api import metrics
from policyengine.api.state import AppState

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: answers while the event loop runs; depends on nothing downstream."""
    return {"status": "alive"}


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Readiness: 200 only when a policy is loaded, the audit store answers and the engine is ready."""
    state: AppState = request.app.state.pe
    ready, checks = state.readiness()
    metrics.READY.set(1 if ready else 0)
    body = {"status": "ready" if ready else "not ready", "cluster": state.settings.cluster, "checks": checks}
    headers = {"x-policyengine-worker": str(os.getpid())}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition, summed over every worker process."""
    state: AppState = request.app.state.pe
    state.refresh_gauges()
    payload, content_type = metrics.exposition()
    return Response(payload, media_type=content_type)
