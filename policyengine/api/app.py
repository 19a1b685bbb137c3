"""The FastAPI application: admission webhook, routing filter, health, metrics and admin endpoints.

`create_app(settings)` builds it; `app_from_environment()` is the factory uvicorn workers call, with the
settings passed as JSON in an environment variable by `policyengine serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from policyengine.admission.review import AdmissionReview
from policyengine.api import access, admin, admission, audit_page, health, logs, openapi, plain_routes, routing
from policyengine.api.memory import settle_heap, tune_collector
from policyengine.api.settings import Settings
from policyengine.api.state import AppState, PolicyNotLoaded

log = logging.getLogger("policyengine.server")


def create_app(settings: Settings) -> FastAPI:
    """The server for one cluster. The policy loads and the audit store opens at startup."""
    state = AppState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(state.start)
        if state.audit is not None:  # PostgreSQL: group commits on this loop, no thread hand-off
            await state.audit.attach_event_loop()
        if settings.tune_gc:
            tune_collector()
            state.add_reload_listener(settle_heap)  # now (the policy is loaded) and after every swap
        watcher = asyncio.create_task(state.watch())
        signer = asyncio.create_task(state.signer.run()) if state.signer is not None else None
        try:
            yield
        finally:
            for task in (watcher, signer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if state.audit is not None:
                await state.audit.detach_event_loop()
            await asyncio.to_thread(state.close)

    app = FastAPI(
        title="policyengine",
        summary="Data-residency admission webhook and routing filter",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the API's credentials when they are configured
    )
    app.state.pe = state
    setattr(app.state, access.STATE_ATTRIBUTE, access.Access.from_settings(settings))
    app.include_router(admission.router)
    app.include_router(routing.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    audit_page.mount(app, settings, lambda: [state.snapshot.policy] if state.loaded else [])  # /audit
    data_path = [admission.router, routing.router]
    if settings.echo_endpoint:  # the benchmarks' floor, served the same way as /validate
        app.include_router(admission.echo_router)
        data_path.append(admission.echo_router)
    plain_routes.serve_plainly(app, *data_path)  # the data path, first (see there)

    schemas: dict[str, type[BaseModel]] = {"AdmissionReview": AdmissionReview, "RouteIn": routing.RouteIn}

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document(request: Request) -> Response:
        refused = access.refusal(request, access.API)
        if refused is not None:
            return refused
        if app.openapi_schema is None:
            app.openapi_schema = openapi.document(app, schemas)
        return JSONResponse(app.openapi_schema)

    @app.exception_handler(access.AccessRefused)
    async def refused(request: Request, exc: access.AccessRefused) -> Response:
        return exc.response

    @app.exception_handler(PolicyNotLoaded)
    async def not_loaded(request: Request, exc: PolicyNotLoaded) -> JSONResponse:
        return JSONResponse({"error": f"not ready: {exc}"}, status_code=503)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        message = f"internal error ({type(exc).__name__}); the server log has the details"
        return JSONResponse({"error": message}, status_code=500)

    return app


# How long a thread may hold the GIL before another waiting thread gets it. Python's 5 ms default
# favours throughput; here it would make every request wait behind the event loop for the audit
# committer thread to run (measured: p99 at 500 requests/s 12 ms with 5 ms, 5 ms with 0.5 ms).
GIL_SWITCH_SECONDS = 0.0005


def app_from_environment() -> FastAPI:
    """The app of a uvicorn worker process (`factory=True`)."""
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    logs.quiet_records()
    return create_app(Settings.from_environment())
