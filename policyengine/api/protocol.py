"""The server's HTTP/1.1 protocol: uvicorn's httptools protocol with the limits uvicorn lacks.

uvicorn (0.54) times only the idle gap between requests: a client may take forever to send a request's
head or body, and its httptools parser takes a head of any size (each piece of a header is appended to
the last, so a 50 MB header also costs quadratic copying) and any number of headers. `GuardedHttpTools`
keeps everything of uvicorn's protocol and adds, per connection:

- a **header timeout**: the head of a request (request line and headers) must be complete within
  `header_seconds` of the connection's start (after the TLS handshake) or of the request's first byte,
  however slowly its bytes trickle in; else the connection is closed with 408;
- a **body timeout**: the body must be complete within `body_seconds` of the head (endpoints that read a
  body answer earlier, with their own deadline and message); else the connection is closed;
- a **head size and header count limit**: at most `max_head_bytes` of request line and headers and
  `max_headers` headers, else 431 and the connection is closed (bytes are counted as they arrive, so at
  most one read beyond the limit is ever buffered);
- a response sent before its request's body was read to the end closes the connection, unless what is
  left of the body is small (at most `DRAIN_BYTES`, declared): that is read and dropped as uvicorn
  does, so a refusal that never read a small body keeps the connection; a client cannot keep streaming
  a large or chunked refused body into it;
- the client certificate of the TLS connection in the ASGI scope, as the ASGI TLS extension
  (`scope["extensions"]["tls"]["client_cert_chain"]`, PEM), which uvicorn leaves out.

`protocol_factory(limits)` is what `uvicorn.run(http=...)` takes: a picklable partial, so spawned
workers rebuild it.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

DRAIN_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Per-connection limits of the protocol (see the module docstring)."""

    header_seconds: float = 10.0
    body_seconds: float = 10.0
    max_head_bytes: int = 64 * 1024
    max_headers: int = 128


class HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing a head over the limits."""



IDLE, HEAD, BODY = 0, 1, 2  # where a connection is: between requests, in a request's head, in its body


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's `HttpToolsProtocol` with header and body timeouts, head limits and TLS client certs.

    Timers are armed only when a read leaves a head or a body incomplete (a request that arrives whole
    in one read, the usual case, costs no timer): `_phase` says where the connection is after each read,
    `_timed` which phase the running timer is for.
    """

    def __init__(self, *args: Any, limits: HttpLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or HttpLimits()
        self._timer: asyncio.TimerHandle | None = None
        self._phase = IDLE
        self._timed = IDLE
        self._head_bytes = 0  # bytes received while a head was incomplete
        self._body_seen = 0  # body bytes of the current request received so far
        self._tls: dict[str, Any] | None = None

    # -- the connection --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = tls_extension(transport)
        self._arm(HEAD)  # the first head is timed from the connection's start

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase != BODY:
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse_head()
                return
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse_head()
                return
            self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._phase != self._timed:
            self._arm(self._phase)

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    # -- parser callbacks ------------------------------------------------------------------------------
    # The callbacks run for every request: they call the base class directly (cheaper than super()).
    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]
        self._phase = HEAD

    def on_headers_complete(self) -> None:
        headers = self.headers
        limits = self.limits
        if len(headers) > limits.max_headers or (
            self._head_bytes > limits.max_head_bytes  # only then can the head itself be too large
            and len(self.url) + sum(len(n) + len(v) + 4 for n, v in headers) > limits.max_head_bytes
        ):
            raise HeadTooLarge
        self._phase = BODY
        self._body_seen = 0
        HttpToolsProtocol.on_headers_complete(self)

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        HttpToolsProtocol.on_body(self, body)

    def on_message_complete(self) -> None:
        self._phase = IDLE
        self._head_bytes = 0
        HttpToolsProtocol.on_message_complete(self)

    def on_response_complete(self) -> None:
        if self._phase == BODY and not self._drainable() and not self.transport.is_closing():
            self.transport.close()  # answered before a large body was read: do not read on into it
            return
        HttpToolsProtocol.on_response_complete(self)

    def _drainable(self) -> bool:
        """Whether what is left of the request's body is declared and small enough to read and drop."""
        for name, value in self.headers:
            if name == b"content-length":
                return int(value) - self._body_seen <= DRAIN_BYTES
        return False  # chunked: no telling how much is left

    # -- timers and refusals ---------------------------------------------------------------------------
    def _arm(self, phase: int) -> None:
        """Time `phase` from now (a head or a body); IDLE only cancels (uvicorn times keep-alive)."""
        self._disarm()
        self._timed = phase
        if phase == HEAD:
            self._timer = self.loop.call_later(self.limits.header_seconds, self._head_timed_out)
        elif phase == BODY:
            self._timer = self.loop.call_later(self.limits.body_seconds, self._body_timed_out)

    def _disarm(self) -> None:
        self._timed = IDLE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        self._timed = IDLE
        if not self.transport.is_closing():
            self._close_with(408, f"the request head did not arrive within {self.limits.header_seconds:g} s")

    def _body_timed_out(self) -> None:
        self._timer = None
        self._timed = IDLE
        if self._phase == BODY and not self.transport.is_closing():
            if self.cycle is not None and not self.cycle.response_started:
                self.cycle.disconnected = True  # the app sees the client gone and stops waiting for the body
                self.cycle.message_event.set()
            self.transport.close()

    def _refuse_head(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._close_with(
                431,
                f"the request head is over {self.limits.max_head_bytes} bytes or {self.limits.max_headers} headers",
            )

    def _close_with(self, status: int, message: str) -> None:
        """Answer `status` with `message` (when no response is under way) and close the connection."""
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy:
            body = message.encode()
            self.transport.write(
                b"".join(
                    [
                        STATUS_LINE[status],
                        b"content-type: text/plain; charset=utf-8\r\n",
                        b"content-length: %d\r\n" % len(body),
                        b"connection: close\r\n\r\n",
                        body,
                    ]
                )
            )
        self.transport.close()


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension of a connection: the client's certificate (PEM) when it sent one."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}.get(version or ""),
        "cipher_suite": None,
    }


def protocol_factory(limits: HttpLimits) -> Any:
    """The `http=` of `uvicorn.run`: the guarded protocol with these limits (picklable for workers)."""
    return functools.partial(GuardedHttpTools, limits=limits)
