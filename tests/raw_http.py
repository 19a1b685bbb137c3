"""HTTP/1.1 over TLS byte by byte, for tests that must control what goes on the wire: a request written
in one TLS record, a head trickled a byte at a time, malformed heads, bodies that never end. Answers are
parsed with h11 (the client side of the same library uvicorn's h11 protocol uses)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import h11


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def client_context(
    ca: Path, cert: tuple[Path, Path] | None = None, *, max_version: str | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    if max_version == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def connect(port: int, context: ssl.SSLContext, timeout: float = 10.0) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return context.wrap_socket(raw, server_hostname="localhost")


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, *, length: bool = True
) -> bytes:
    """A whole request as bytes: Host, the headers, Content-Length (unless `length` is False), the body."""
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_answer(sock: ssl.SSLSocket, method: str = "POST") -> Answer | None:
    """The next response on `sock`, or None when the server closed the connection without one."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method=method, target="/", headers=[("host", "x")]))  # sets h11's state
    connection.send(h11.EndOfMessage())
    status = 0
    headers: dict[str, str] = {}
    body = b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data and status == 0:
                return None
            connection.receive_data(data)
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return Answer(status, headers, body)


def exchange(
    port: int, context: ssl.SSLContext, data: bytes, method: str = "POST", timeout: float = 10.0
) -> Answer | None:
    """Send `data` in one write on a new connection and read the answer."""
    with connect(port, context, timeout) as sock:
        sock.sendall(data)
        return read_answer(sock, method)
