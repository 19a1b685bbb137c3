"""`POST /v1/admin/reload`: reload the policy repo now (admin token or client certificate), swap
atomically, tell other workers."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from policyengine.api import access
from policyengine.api.state import AppState

router = APIRouter(prefix="/v1/admin")


@router.post("/reload")
async def reload(request: Request) -> Response:
    """Reload the policy repo; 200 with the revision served, 422 with the problems (old policy kept)."""
    state: AppState = request.app.state.pe
    refused = access.refusal(request, access.ADMIN)
    if refused is not None:
        return refused
    outcome = await asyncio.to_thread(state.reload)
    body = {
        "revision": outcome.revision,
        "previous": outcome.previous,
        "changed": outcome.changed,
        "problems": list(outcome.problems),
    }
    if not outcome.ok:
        body["error"] = "the policy repo did not load; still serving the previous revision"
        return JSONResponse(body, status_code=422)
    state.request_reload_everywhere()
    return JSONResponse(body)
