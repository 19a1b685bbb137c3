"""`POST /v1/admin/reload`: reload the policy repo now (bearer token), swap atomically, tell other workers."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from policyengine.api.state import AppState

router = APIRouter(prefix="/v1/admin")


def authorized(request: Request, token: str) -> bool:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


@router.post("/reload")
async def reload(request: Request) -> Response:
    """Reload the policy repo; 200 with the revision served, 422 with the problems (old policy kept)."""
    state: AppState = request.app.state.pe
    token = state.settings.admin_token
    if not token:
        return JSONResponse(
            {"error": "the admin API is off: start the server with --admin-token-file FILE to enable it"},
            status_code=404,
        )
    if not authorized(request, token):
        return JSONResponse(
            {
                "error": "missing or wrong bearer token: send `Authorization: Bearer <token>` "
                "(the token is in --admin-token-file)"
            },
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="policyengine-admin"'},
        )
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
