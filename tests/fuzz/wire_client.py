"""A fast client for fuzz runs: a few keep-alive TLS connections that send `hostile.Request`s as bytes
and read each answer (status, headers, body), reconnecting whenever the server closes a connection.

A request the server answers by closing without a response (it may, for bytes that are not HTTP) counts
as status 0. Interim 1xx answers (`Expect: 100-continue`) are skipped.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fuzz.hostile import Request

READ_TIMEOUT = 30.0


@dataclass
class Outcome:
    request: Request
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Tally:
    """Status codes of a run, and the answers to its good requests."""

    statuses: Counter[int] = field(default_factory=Counter)
    good: list[Outcome] = field(default_factory=list)
    server_errors: list[Outcome] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def add(self, outcome: Outcome) -> None:
        self.statuses[outcome.status] += 1
        if outcome.request.good:
            self.good.append(outcome)
        if outcome.status >= 500:
            self.server_errors.append(outcome)


async def _read_answer(reader: asyncio.StreamReader, method: str) -> tuple[int, dict[str, str], bytes, bool]:
    """One answer: status, headers, body, and whether the connection stays open."""
    while True:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            continue
        body = b""
        if method != "HEAD" and status not in (204, 304):
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                    chunk = await reader.readexactly(size + 2)
                    if size == 0:
                        break
                    body += chunk[:-2]
            else:
                body = await reader.readexactly(int(headers.get("content-length", "0")))
        keep = headers.get("connection", "").lower() != "close"
        return status, headers, body, keep


async def _worker(
    port: int, context: ssl.SSLContext, queue: asyncio.Queue[Request | None], record: Callable[[Outcome], None]
) -> None:
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while True:
        request = await queue.get()
        if request is None:
            break
        if request.fresh and connection is not None:
            connection[1].close()
            connection = None
        for attempt in (1, 2):
            if connection is None:
                connection = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=context, server_hostname="localhost"
                )
            reader, writer = connection
            try:
                writer.write(request.wire())
                await writer.drain()
                status, headers, body, keep = await _read_answer(reader, request.method)
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ValueError, IndexError):
                writer.close()
                connection = None
                if attempt == 1 and request.good:
                    continue  # a good request met a connection a bad one had closed: resend it once
                record(Outcome(request, 0, {}, b""))
                break
            record(Outcome(request, status, headers, body))
            if not keep or request.fresh:
                writer.close()
                connection = None
            break
    if connection is not None:
        connection[1].close()


async def run(port: int, context: ssl.SSLContext, requests: Iterable[Request], connections: int = 8) -> Tally:
    """Send every request over `connections` connections; the tally of answers."""
    tally = Tally()
    queue: asyncio.Queue[Request | None] = asyncio.Queue(maxsize=connections * 4)
    workers = [asyncio.create_task(_worker(port, context, queue, tally.add)) for _ in range(connections)]
    for request in requests:
        await queue.put(request)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    return tally


class Session:
    """One request at a time, each on a connection of its own (so one example never disturbs the next),
    for property tests that send what hypothesis draws."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port = port
        self.context = context
        self._loop = asyncio.new_event_loop()

    def send(self, request: Request) -> Outcome:
        return self._loop.run_until_complete(self._send(request))

    async def _send(self, request: Request) -> Outcome:
        outcome = Outcome(request, 0, {}, b"")

        def record(got: Outcome) -> None:
            nonlocal outcome
            outcome = got

        queue: asyncio.Queue[Request | None] = asyncio.Queue()
        queue.put_nowait(request)
        queue.put_nowait(None)
        await _worker(self.port, self.context, queue, record)
        return outcome

    def close(self) -> None:
        self._loop.close()
