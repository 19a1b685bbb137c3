"""`policyengine test --engine opa`: the Rego unit tests, run by OPA (the test OPA server stands in for
the OPA server; evaluation is real OPA)."""

from __future__ import annotations

import re
from pathlib import Path

from opa_server import OpaTestServer
from typer.testing import CliRunner

from policyengine.cli.main import app
from policyengine.resources import default_policies

from .test_cross_engine import KNOWN_DIVERGENT

ROOT = Path(__file__).resolve().parents[2]


def test_policyengine_test_runs_the_rego_tests_through_opa(opa_server: OpaTestServer) -> None:
    result = CliRunner().invoke(
        app, ["test", "--engine", "opa", "--opa-url", opa_server.url, "--policies", str(default_policies())]
    )
    summary = re.search(r"PASS: (\d+)/(\d+), FAIL: (\d+)", result.output)
    assert summary, result.output
    passed, total, failed = map(int, summary.groups())
    assert total >= 20 and passed + failed == total
    # The only failures are the known regorus/OPA divergences (tests/opa/test_cross_engine.py).
    assert failed == len(KNOWN_DIVERGENT)
    for _, name in KNOWN_DIVERGENT:
        assert name in result.output
    assert opa_server.state.data["policyengine"]["policy"]["revision"].startswith("sha256:")


def test_policyengine_test_with_opa_down_says_so() -> None:
    server = OpaTestServer().start()
    url = server.url
    server.close()
    result = CliRunner().invoke(
        app, ["test", "--engine", "opa", "--opa-url", url, "--policies", str(default_policies())]
    )
    assert result.exit_code == 2
    assert "unreachable" in result.output
