"""OPA down, slow or failing: every evaluation is an EngineError with the reason, `ready()` is false,
a metric counts it, and decisions come back when OPA does.

The OPA server is the test stand-in (tests/opa_server.py); its evaluation is real OPA.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opa_server import OpaTestServer
from prometheus_client import REGISTRY

from policyengine.engine import EngineError
from policyengine.engine.opa import OpaEngine

MODULES = {
    "rego/decision.rego": 'package policyengine\n\ndecision := {"allowed": input.n < 10}\n',
}
DATA = {"revision": "r1"}
QUERY = "data.policyengine.decision"


def errors(reason: str) -> float:
    return REGISTRY.get_sample_value("policyengine_opa_errors_total", {"reason": reason}) or 0.0


@pytest.fixture
def server() -> Iterator[OpaTestServer]:
    with OpaTestServer() as opa:
        yield opa


@pytest.fixture
def engine(server: OpaTestServer) -> OpaEngine:
    engine = OpaEngine(server.url, timeout=0.5, retries=2, backoff=0.01)
    engine.load(MODULES, DATA)
    assert engine.ready()
    return engine


def test_opa_down_then_back(server: OpaTestServer, engine: OpaEngine) -> None:
    server.stop()
    before = errors("unreachable")
    with pytest.raises(EngineError, match=r"unreachable .*3 attempts.*is the OPA sidecar running"):
        engine.evaluate(QUERY, '{"n": 1}')
    assert errors("unreachable") == before + 1
    assert engine.healthy() is False
    assert engine.ready() is False
    server.start()  # same port, state kept (OPA was only unreachable)
    assert engine.evaluate(QUERY, '{"n": 1}') == {"allowed": True}
    assert engine.ready() is True


def test_opa_restarted_empty_gets_the_policy_pushed_again(server: OpaTestServer, engine: OpaEngine) -> None:
    server.restart(clear=True)
    assert server.state.modules == {}
    assert engine.evaluate(QUERY, '{"n": 1}') == {"allowed": True}
    assert server.state.data["policyengine"]["policy"]["revision"] == "r1"
    server.restart(clear=True)
    assert engine.ready() is True  # the readiness probe also restores it


def test_opa_slow_past_the_timeout(server: OpaTestServer, engine: OpaEngine) -> None:
    server.fault, server.delay = "slow", 1.0
    before = errors("timeout")
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"did not answer the query .* within 0.5s"):
        engine.evaluate(QUERY, '{"n": 1}')
    assert time.monotonic() - started < 0.9  # one timeout, not one per retry
    assert errors("timeout") == before + 1
    assert engine.ready() is False
    server.fault = "none"
    assert engine.evaluate(QUERY, '{"n": 1}') == {"allowed": True}


def test_opa_answering_500(server: OpaTestServer, engine: OpaEngine) -> None:
    server.fault = "error"
    before = errors("http_error")
    with pytest.raises(EngineError, match="HTTP 500: simulated OPA failure"):
        engine.evaluate(QUERY, '{"n": 1}')
    assert errors("http_error") == before + 1
    assert engine.ready() is False
    server.fault = "none"
    assert engine.evaluate(QUERY, '{"n": 1}') == {"allowed": True}
    assert engine.ready() is True


def test_load_while_down_is_not_ready_until_a_load_succeeds(server: OpaTestServer) -> None:
    server.stop()
    engine = OpaEngine(server.url, timeout=0.5, retries=1, backoff=0.01)
    with pytest.raises(EngineError, match="unreachable"):
        engine.load(MODULES, DATA)
    assert engine.ready() is False
    with pytest.raises(EngineError, match=r"no policy is loaded .*last error: OPA at .* is unreachable"):
        engine.evaluate(QUERY, '{"n": 1}')
    server.start()
    engine.load(MODULES, DATA)
    assert engine.ready() is True
