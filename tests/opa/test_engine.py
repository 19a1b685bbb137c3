"""The OPA engine against the test OPA server (a stand-in for the OPA server; evaluation is real OPA)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opa_server import OpaTestServer
from prometheus_client import REGISTRY

from policyengine.engine import EngineError, make_engine
from policyengine.engine.opa import ENVELOPE_MODULE_ID, OpaEngine

LIB = """package policyengine.lib

double(x) := 2 * x
"""

DECISION = """package policyengine

import data.policyengine.lib

decision := {"allowed": input.n < data.policyengine.policy.limit, "twice": lib.double(input.n)}

parsed := to_number(input.text)
"""

TESTS = """package tests.sample

test_small_allowed if data.policyengine.decision.allowed with input as {"n": 1}

test_wrong_on_purpose if data.policyengine.decision.allowed with input as {"n": 100}
"""

MODULES = {"rego/decision.rego": DECISION, "rego/lib.rego": LIB, "rego/sample_test.rego": TESTS}


def data(revision: str, limit: int = 10) -> dict[str, object]:
    return {"revision": revision, "limit": limit}


def errors(reason: str) -> float:
    return REGISTRY.get_sample_value("policyengine_opa_errors_total", {"reason": reason}) or 0.0


@pytest.fixture
def server() -> Iterator[OpaTestServer]:
    with OpaTestServer() as opa:
        yield opa


@pytest.fixture
def engine(server: OpaTestServer) -> OpaEngine:
    engine = OpaEngine(server.url, timeout=2.0)
    engine.load(MODULES, data("r1"))
    return engine


def test_make_engine_builds_the_opa_engine(server: OpaTestServer) -> None:
    engine = make_engine("opa", opa_url=server.url)
    assert engine.name == "opa"
    with pytest.raises(EngineError, match="--opa-url"):
        make_engine("opa")
    with pytest.raises(EngineError, match="not an OPA address"):
        OpaEngine("127.0.0.1:8181")


def test_load_pushes_modules_in_dependency_order_and_the_data(
    server: OpaTestServer, engine: OpaEngine
) -> None:
    assert set(server.state.modules) == {*MODULES, ENVELOPE_MODULE_ID}
    assert server.state.data["policyengine"]["policy"] == data("r1")
    assert server.state.data["policyengine_opa"]["modules"] == sorted(MODULES)
    assert engine.revision == "r1"
    assert engine.evaluate("data.policyengine.decision", json.dumps({"n": 3})) == {
        "allowed": True,
        "twice": 6,
    }
    assert engine.evaluate("data.policyengine.decision", json.dumps({"n": 30}))["allowed"] is False


def test_reload_removes_modules_that_are_gone(server: OpaTestServer, engine: OpaEngine) -> None:
    modules = {k: v for k, v in MODULES.items() if "sample_test" not in k}
    engine.load(modules, data("r2"))
    assert "rego/sample_test.rego" not in server.state.modules
    # A new process (a fresh engine) also removes what an earlier one pushed.
    fresh = OpaEngine(server.url)
    fresh.load(
        {
            "rego/decision.rego": DECISION.replace("lib.double(input.n)", "0").replace(
                "import data.policyengine.lib\n", ""
            )
        },
        data("r3"),
    )
    assert "rego/lib.rego" not in server.state.modules
    assert fresh.evaluate("data.policyengine.decision", '{"n": 1}') == {"allowed": True, "twice": 0}


def test_a_decision_from_another_revision_is_refused(server: OpaTestServer, engine: OpaEngine) -> None:
    other = OpaEngine(server.url)
    other.load(MODULES, data("r2", limit=0))  # someone else pushes another policy to the same OPA
    before = errors("revision_mismatch")
    with pytest.raises(EngineError, match="revision r2, but r1 is loaded"):
        engine.evaluate("data.policyengine.decision", '{"n": 3}')
    assert errors("revision_mismatch") == before + 1
    assert engine.ready() is False


def test_evaluations_during_a_reload_by_another_process_are_refused(
    server: OpaTestServer, engine: OpaEngine
) -> None:
    server.state.put_data(["policyengine", "policy"], {"revision": "loading r9"})
    with pytest.raises(EngineError, match="being reloaded"):
        engine.evaluate("data.policyengine.decision", '{"n": 3}')


def test_builtin_errors_are_errors_not_undefined(engine: OpaEngine) -> None:
    with pytest.raises(EngineError, match="to_number"):
        engine.evaluate("data.policyengine.parsed", '{"text": "abc"}')
    assert engine.evaluate("data.policyengine.parsed", '{"text": "12"}') == 12


def test_undefined_is_an_error(engine: OpaEngine) -> None:
    with pytest.raises(EngineError, match="undefined"):
        engine.evaluate("data.policyengine.nothing_here", "{}")
    with pytest.raises(EngineError, match="rule reference"):
        engine.evaluate("data.policyengine.decision; true", "{}")


def test_a_module_that_does_not_compile_names_the_file(server: OpaTestServer) -> None:
    engine = OpaEngine(server.url)
    with pytest.raises(EngineError, match=r"rego/broken.rego.*unsafe"):
        engine.load({"rego/broken.rego": "package policyengine\n\nx if { y > 1 }\n"}, data("r1"))
    assert engine.revision is None
    with pytest.raises(EngineError, match="no policy is loaded"):
        engine.evaluate("data.policyengine.decision", "{}")


def test_v0_syntax_is_refused_not_rewritten(server: OpaTestServer) -> None:
    engine = OpaEngine(server.url)
    with pytest.raises(EngineError, match=r"rego/old\.rego"):
        engine.load({"rego/old.rego": "package policyengine\n\nallow { true }\n"}, data("r1"))
    assert "rego/old.rego" not in server.state.modules


def test_run_tests_evaluates_each_test_rule_through_opa(engine: OpaEngine) -> None:
    results = {r.name: r for r in engine.run_tests()}
    assert set(results) == {"test_small_allowed", "test_wrong_on_purpose"}
    assert results["test_small_allowed"].passed
    assert results["test_small_allowed"].file == "rego/sample_test.rego"
    assert results["test_small_allowed"].row == 3
    assert not results["test_wrong_on_purpose"].passed
    assert results["test_wrong_on_purpose"].error == "undefined"


def test_bearer_token_is_sent() -> None:
    with OpaTestServer(token="s3cret") as opa:
        with pytest.raises(EngineError, match="check --opa-token"):
            OpaEngine(opa.url, token="wrong").load(MODULES, data("r1"))
        engine = make_engine("opa", opa_url=opa.url, opa_token="s3cret")
        engine.load(MODULES, data("r1"))
        assert engine.evaluate("data.policyengine.decision", '{"n": 1}')["allowed"] is True


def test_data_without_revision_gets_a_content_hash(server: OpaTestServer) -> None:
    engine = OpaEngine(server.url)
    engine.load(MODULES, {"limit": 10})
    assert engine.revision is not None and engine.revision.startswith("sha256:")
    assert engine.evaluate("data.policyengine.decision", '{"n": 1}')["allowed"] is True
