"""Request bodies, bounded before they are read: by size (declared and streamed), by time, and as JSON.

Every endpoint that takes a body reads it here: `read_json(request, limit, seconds)` refuses a declared
`Content-Length` over `limit` before reading a byte, stops a streamed (chunked) body as soon as it passes
`limit`, gives up when the whole body has not arrived within `seconds`, and parses it with
`policyengine.bounded_json`. Each refusal is a `BodyProblem` with the HTTP status (400, 408, 413), what
was wrong, where (a JSON path, a header) and what to do. A refusal sent before the body was read whole
closes the connection (`Connection: close`), so a client cannot keep streaming into it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import ClientDisconnect, Request

from policyengine import bounded_json


class BodyProblem(Exception):
    """A body the endpoint will not take: HTTP `status`, `reason` (a metrics label), what, where, remedy."""

    def __init__(
        self, status: int, reason: str, what: str, where: str = "(body)", remedy: str = "", *, unread: bool = False
    ) -> None:
        super().__init__(f"{where}: {what}")
        self.status = status
        self.reason = reason
        self.what = what
        self.where = where
        self.remedy = remedy
        self.unread = unread  # the body was not read to its end: the connection must close

    @property
    def message(self) -> str:
        return f"{self.where}: {self.what}" + (f"; {self.remedy}" if self.remedy else "")

    @property
    def headers(self) -> dict[str, str]:
        return {"connection": "close"} if self.unread else {}


def too_large(size: int, limit: int, remedy: str) -> BodyProblem:
    return BodyProblem(
        413, "too_large", f"body of {size} bytes is over the limit of {limit} bytes", remedy=remedy, unread=True
    )


async def read_body(request: Request, limit: int, *, remedy: str = "send a smaller body") -> bytes:
    """The request body, refused as soon as it passes `limit` bytes (never buffered beyond it)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BodyProblem(400, "bad_length", "Content-Length is not a number", "Content-Length", unread=True)
        if int(declared) > limit:
            raise too_large(int(declared), limit, remedy)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit, remedy)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BodyProblem(400, "disconnected", "the client went away before sending the whole body") from None
    return b"".join(chunks)


async def read_body_within(
    request: Request, limit: int, seconds: float, *, remedy: str = "send a smaller body"
) -> bytes:
    """`read_body`, refused with 408 when the whole body has not arrived within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            return await read_body(request, limit, remedy=remedy)
    except TimeoutError:
        raise body_timeout(seconds) from None


def body_timeout(seconds: float) -> BodyProblem:
    """The 408 of a body that did not arrive within `seconds` (the connection closes)."""
    return BodyProblem(
        408,
        "body_timeout",
        f"the body did not arrive within {seconds:g} s",
        remedy="send the whole body at once",
        unread=True,
    )


def parse_json(body: bytes) -> Any:
    """The body as JSON within `bounded_json`'s bounds, or a 400 `BodyProblem` naming the JSON path."""
    try:
        return bounded_json.parse(body)
    except bounded_json.JsonRefused as exc:
        raise BodyProblem(400, exc.reason, exc.what, exc.where) from None


async def read_json(request: Request, limit: int, seconds: float, *, remedy: str = "send a smaller body") -> Any:
    """The body read within `limit` bytes and `seconds`, parsed as bounded JSON."""
    return parse_json(await read_body_within(request, limit, seconds, remedy=remedy))
