"""The cost of the guarded HTTP protocol (policyengine/api/protocol.py) beside uvicorn's own httptools
protocol, in one process: each parses the same requests (the 2 KB HTTPRoute review of
examples/admission/, one request per read as a keep-alive client sends them) through a no-op ASGI app
into an in-memory transport, in alternating rounds. Prints the CPU microseconds per request of the best
round of each and the ratio.

This isolates what the protocol adds (timers armed and cancelled, head counters, the TLS extension) from
the app, whose work is far larger; bench/webhook.py --compare-protocols measures the whole server.

    .venv/bin/python bench/protocol.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from policyengine.api.protocol import GuardedHttpTools, HttpLimits

REVIEW = Path(__file__).resolve().parents[1] / "examples" / "admission" / "create-httproute-profile.json"


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


class Transport(asyncio.Transport):
    """Collects what the protocol writes; a close during the run is an error of the benchmark."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.done = False

    def write(self, data: Any) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8443)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        if not self.done:
            raise AssertionError("the protocol closed the benchmark's connection")


def one_round(make: Any, request: bytes, count: int) -> float:
    """Seconds per request for `count` requests on one connection of the protocol `make` builds."""
    loop = asyncio.new_event_loop()
    config = uvicorn.Config(app=app, log_level="warning", access_log=False, lifespan="off")
    config.load()
    state = ServerState()
    protocol = make(config=config, server_state=state, app_state={}, _loop=loop)
    transport = Transport()
    protocol.connection_made(transport)
    started = time.process_time()  # CPU time of this process: less disturbed by a busy machine
    for _ in range(count):
        protocol.data_received(request)
        loop.run_until_complete(asyncio.gather(*state.tasks))
    took = time.process_time() - started
    transport.done = True
    protocol.connection_lost(None)
    loop.close()
    return took / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    body = REVIEW.read_bytes()
    request = (
        b"POST /validate HTTP/1.1\r\nHost: policyengine.policyengine-system.svc:443\r\n"
        b"Content-Type: application/json\r\nAccept: application/json, */*\r\nUser-Agent: kube-apiserver-admission\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    guarded = lambda **kw: GuardedHttpTools(limits=HttpLimits(), **kw)  # noqa: E731
    times: dict[str, list[float]] = {"stock": [], "guarded": []}
    one_round(HttpToolsProtocol, request, 2000)  # warm-up
    for _ in range(args.rounds):
        times["stock"].append(one_round(HttpToolsProtocol, request, args.requests))
        times["guarded"].append(one_round(guarded, request, args.requests))
    stock, mine = min(times["stock"]), min(times["guarded"])
    print(f"HTTP protocol per request, CPU time (best of {args.rounds} rounds of {args.requests}; load average "
          f"{os.getloadavg()[0]:.1f}): uvicorn httptools {stock * 1e6:.1f} us, guarded {mine * 1e6:.1f} us")
    print(f"guarded : stock = {mine / stock:.2f} (+{(mine - stock) * 1e6:.1f} us per request)")


if __name__ == "__main__":
    main()
