"""Fixtures shared by every test area: the Rego engines, including OPA through the test OPA server.

`opa_server` is one test OPA REST server per test session (per xdist worker), on a free loopback port.
`engine_factory(kind)` builds a ready engine of either kind; each "opa" engine gets its own test OPA
server, so engines never see each other's policy revisions. Both are the real evaluators: regorus, and
OPA's Go evaluator behind the REST stand-in (see tests/opa_server.py for what is a stand-in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opa_server import OpaTestServer

from policyengine.engine import Engine, make_engine

ENGINE_KINDS = ("regorus", "opa")


@pytest.fixture(scope="session")
def opa_server() -> Iterator[OpaTestServer]:
    """A test OPA server for the whole session (per xdist worker)."""
    server = OpaTestServer().start()
    yield server
    server.close()


@pytest.fixture
def engine_factory() -> Iterator[Callable[[str], Engine]]:
    """`make(kind)`: a fresh engine of `kind` ("regorus" or "opa"), cleaned up after the test."""
    servers: list[OpaTestServer] = []

    def make(kind: str) -> Engine:
        if kind == "opa":
            server = OpaTestServer().start()
            servers.append(server)
            return make_engine("opa", opa_url=server.url, timeout=5.0)
        return make_engine(kind)

    yield make
    for server in servers:
        server.close()
