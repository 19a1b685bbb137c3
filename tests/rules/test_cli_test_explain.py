"""`policyengine test` (Rego unit tests) and `policyengine explain`; and the acceptance check that
changing the law in a copy of the policy repo makes the right Rego and pytest checks fail."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli import run

from policyengine.decide import Decider
from policyengine.decision import Outcome
from policyengine.engine import make_engine
from policyengine.policy import load_policy
from policyengine.resources import default_policies
from policyengine.route import Route

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_rego_unit_tests_pass() -> None:
    result = run("test", "-v")
    assert result.returncode == 0, result.stdout
    assert "FAIL" not in result.stdout.replace("FAIL: 0", "")
    passed = [line for line in result.stdout.splitlines() if " PASS " in line]
    assert len(passed) >= 40
    regimes = {line.split("data.tests.")[1].split(".")[0] for line in passed}
    assert {"gdpr", "pipl", "ccpa", "decision"} <= regimes


def test_run_filter_selects_tests() -> None:
    result = run("test", "-v", "--run", "opt_out")
    assert result.returncode == 0
    assert all("opt_out" in line for line in result.stdout.splitlines() if " PASS " in line)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(default_policies(), target)
    return target


def _decide(repo: Path, service: str, src: str, dst: str) -> Outcome:
    policy = load_policy(repo)
    decider = Decider(policy, make_engine("regorus"))
    ns, name = service.split("/")
    route = Route(service, decider.endpoint(src), decider.endpoint(dst, service, policy.classify(ns, name)))
    return decider.decide(route, now=NOW).outcome


def test_removing_the_us_adequacy_entry_fails_the_right_tests(repo: Path) -> None:
    assert _decide(repo, "shop/checkout", "eu-1", "partner-1") is Outcome.ALLOW
    regimes = repo / "regimes.yaml"
    text = regimes.read_text()
    entry = "      - {jurisdiction: US, condition: dpf_certified}"
    assert entry in text
    regimes.write_text(text.replace(entry + "\n", "", 1).replace(entry, "", 1))
    result = run("test", "--policies", str(repo))
    assert result.returncode == 1
    assert "test_us_dpf_certified_partner_allowed" in result.stdout
    assert "test_eu_to_eu_allowed" not in result.stdout  # only the affected tests fail
    assert _decide(repo, "shop/checkout", "eu-1", "partner-1") is not Outcome.ALLOW


def test_expiring_a_mechanism_fails_the_right_tests(repo: Path) -> None:
    assert _decide(repo, "shop/profile", "cn-1", "hk-1") is Outcome.ALLOW
    transfers = repo / "transfers.yaml"
    text = transfers.read_text()
    assert "expires: 2028-06-30" in text
    transfers.write_text(text.replace("expires: 2028-06-30", "expires: 2026-01-31", 1))
    result = run("test", "--policies", str(repo))
    assert result.returncode == 1
    assert "test_hk_with_standard_contract_allowed" in result.stdout
    assert _decide(repo, "shop/profile", "cn-1", "hk-1") is Outcome.DENY


def test_a_failing_rego_test_of_the_repo_is_reported_with_its_file(repo: Path) -> None:
    (repo / "rego").mkdir()
    (repo / "rego" / "mine_test.rego").write_text(
        "package tests.mine\n\ntest_fails if {\n\tdata.policyengine.policy.as_of == \"1999-01-01\"\n}\n"
    )
    result = run("test", "--policies", str(repo))
    assert result.returncode == 1
    assert "mine_test.rego:3" in result.stdout and "test_fails" in result.stdout


def test_a_rego_syntax_error_is_exit_2_with_location(repo: Path) -> None:
    (repo / "rego").mkdir()
    (repo / "rego" / "broken.rego").write_text("package policyengine.mine\n\nx := [\n")
    result = run("test", "--policies", str(repo))
    assert result.returncode == 2
    assert "broken.rego" in result.stderr
    assert "Traceback" not in result.stderr


def test_explain_shows_each_step() -> None:
    result = run("explain", "--service", "shop/checkout", "--from", "eu-1", "--to", "us-1")
    assert result.returncode == 0  # rewrite: not a refusal
    out = result.stdout
    assert "eu-1 in aws/eu-central-1 -> DE" in out and "us-1 in aws/us-east-1 -> US" in out
    assert "Regimes of the data moved: GDPR" in out
    assert "scc-checkout-us1" in out and "expired" in out
    assert "gdpr-mechanism-expired" in out
    assert "permitted clusters: eu-1, eu-2, partner-1" in out


def test_explain_json_and_refusal_exit_code() -> None:
    result = run("explain", "--service", "shop/profile", "--from", "cn-1", "--to", "eu-1", "--format", "json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["decision"]["outcome"] == "deny"
    assert [e["role"] for e in doc["steps"]["ends"]] == ["source", "destination"]


def test_explain_decides_a_route_to_or_from_an_undeclared_cluster() -> None:
    """ "What if we route to mars-1" is answered: a deny by rule unknown-cluster, not a usage error."""
    to = run("explain", "--service", "shop/profile", "--from", "cn-1", "--to", "mars-1", "-o", "json")
    assert to.returncode == 1, to.stderr  # enforced deny
    doc = json.loads(to.stdout)
    assert doc["decision"]["outcome"] == "deny"
    assert {v["rule"] for v in doc["decision"]["violations"]} == {"unknown-cluster"}
    assert {"role": "destination", "cluster": "mars-1", "known": False} in doc["steps"]["ends"]
    assert "not declared in policies/clusters.yaml" in to.stderr
    source = run("explain", "--service", "shop/catalog", "--from", "moon-1", "--to", "eu-1")
    assert source.returncode == 1 and "moon-1 — unknown cluster" in source.stdout
    assert "unknown-cluster" in source.stdout


def test_explain_rejects_a_bad_service() -> None:
    bad = run("explain", "--service", "checkout", "--from", "eu-1", "--to", "eu-2")
    assert bad.returncode == 2 and "NAMESPACE/NAME" in bad.stderr
