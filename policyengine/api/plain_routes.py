"""The endpoints every request of the data path hits, served as plain Starlette routes ahead of FastAPI's.

`/validate`, `/mutate`, `/v1/authz`, `/v1/authz/{path}` and `/v1/decide` (and `/echo`, the benchmarks'
floor, when it is on) take the raw `Request` and read and check their own bodies (`api/body.py`,
`bounded_json`): none of FastAPI's parameter handling applies to them, yet its per-request route
machinery (the match through the included routers, the route context, dependency solving) cost 8 % of
a `/validate` request's CPU and 18 % of an authz request's (`bench/side_by_side.py`, the same tree with
and without this, 2026-12-02). `serve_plainly(app, router)` puts before every other route a Starlette
`Route` for each route of `router` whose endpoint takes the request alone, with the same path, methods,
name and endpoint: the decorator stays the one definition of each. Errors take the same way as before:
the app's exception handlers (a wrong method is FastAPI's JSON 405). The APIRoutes stay registered for
the OpenAPI document; no request reaches them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import Route


def takes_the_request_alone(endpoint: Callable[..., Any]) -> bool:
    """Whether `endpoint` is `async def f(request: Request)`: what a Starlette route calls."""
    parameters = list(inspect.signature(endpoint).parameters)
    return (
        inspect.iscoroutinefunction(endpoint)
        and parameters == ["request"]
        and typing.get_type_hints(endpoint).get("request") is Request
    )


def serve_plainly(app: FastAPI, *routers: APIRouter) -> list[Route]:
    """Put a plain route for each request-only endpoint of `routers` first in `app` (see the module
    docstring); returns them."""
    plain = [
        Route(route.path, route.endpoint, methods=sorted(route.methods or ()), name=route.name, include_in_schema=False)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and takes_the_request_alone(route.endpoint)
    ]
    app.router.routes[:0] = plain
    return plain
