"""`policyengine simulate`: what flips under each kind of candidate, over three clusters' manifest dirs.

The manifests are tests/fixtures/simulate/<cluster>/ (checkout fails over from eu-1, billing is exported
from us-ca-1, profile is served from hk-1 for cn-1); the before is decided on 2026-11-26 with the
default policy repo and the real regorus engine, through the real command in a subprocess. Each
candidate flips something else, for a reason the policy repo's dates and entities give.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

from cli import ROOT, run
from typer.testing import CliRunner

from policyengine.cli.main import app
from policyengine.resources import default_policies

FIXTURES = ROOT / "tests" / "fixtures" / "simulate"
CLUSTERS = [f"{c}={FIXTURES / c}" for c in ("eu-1", "us-ca-1", "cn-1")]
BEFORE = ("--now", "2026-11-26")


def simulate(*args: str) -> tuple[int, dict[str, object], str]:
    result = run("simulate", *CLUSTERS, *BEFORE, "-o", "json", *args)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def flips_by_name(doc: dict[str, object]) -> dict[str, dict[str, object]]:
    flips = doc["flips"]
    assert isinstance(flips, list)
    return {f["resource"]["name"]: f for f in flips}


def test_a_date_after_a_contract_expires_denies_the_export_it_covered() -> None:
    code, doc, _ = simulate("--time", "2027-02-01")
    assert code == 1
    (billing,) = flips_by_name(doc).values()
    assert billing["cluster"] == "us-ca-1" and billing["newly_denied"] is True
    assert (billing["before"]["decision"], billing["after"]["decision"]) == ("allow", "deny")
    (route,) = billing["routes"]
    assert (route["source"], route["destination"]) == ("ads-1", "us-ca-1")
    assert (route["before"], route["after"]) == ("allow", "deny")
    (because,) = route["because"]
    assert because["regime"] == "CCPA" and because["cluster"] == "ads-1" and "adnet" in because["message"]
    later, doc, _ = simulate("--time", "2028-07-01")
    assert later == 1 and set(flips_by_name(doc)) == {"billing", "profile"}  # the PIPL contract ends 2028-06-30


def test_an_added_cluster_run_by_an_entity_without_a_contract_is_a_new_refused_route() -> None:
    result = run(
        "simulate", *CLUSTERS, *BEFORE, "--add-cluster", "ap-1", "--region", "aws/us-east-1", "--entity", "sinnet"
    )
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "+cluster ap-1 (aws/us-east-1, sinnet)" in out
    assert "DENIED" in out and "ServiceExport shop/billing in us-ca-1: allow → deny" in out
    assert "route shop/billing ap-1 → us-ca-1: (none) → deny" in out
    assert "CCPA ccpa-recipient-contract" in out and "discloses it to sinnet" in out
    assert "catalog" not in out, "a new route that is allowed is no flip"
    assert "1 flip(s), 1 newly denied" in out


def test_a_removed_cluster_takes_its_refused_route_away() -> None:
    code, doc, _ = simulate("--remove-cluster", "us-1")
    assert code == 0, "nothing admitted is refused"
    (checkout,) = flips_by_name(doc).values()
    assert checkout["cluster"] == "eu-1" and checkout["newly_denied"] is False
    assert (checkout["before"]["decision"], checkout["after"]["decision"]) == ("rewrite", "allow")
    (route,) = checkout["routes"]
    assert (route["destination"], route["after"]) == ("us-1", None)
    assert route["because"][0]["rule"] == "gdpr-mechanism-expired"


def test_a_candidate_policy_directory(tmp_path: Path) -> None:
    candidate = tmp_path / "candidate"
    shutil.copytree(default_policies(), candidate)
    classifications = candidate / "classifications.yaml"
    text = classifications.read_text()
    unregulated = "catalog-*]}\n    data_classes: []\n    subjects: []"
    assert unregulated in text
    personal = "catalog-*]}\n    data_classes: [personal]\n    subjects: [EEA]"
    classifications.write_text(text.replace(unregulated, personal))
    code, doc, _ = simulate("--candidate-policies", str(candidate))
    assert code == 1, "the catalog, now personal data of EEA subjects, may no longer be exported everywhere"
    (catalog,) = flips_by_name(doc).values()
    assert catalog["resource"]["name"] == "catalog" and catalog["newly_denied"] is True
    assert {r["destination"] for r in catalog["routes"]} == {"eu-1"}
    assert "us-1" in {r["source"] for r in catalog["routes"]}
    assert {v["regime"] for v in catalog["because"]} == {"GDPR"}
    assert doc["before"]["policy_revision"] != doc["after"]["policy_revision"]
    sarif = run("simulate", *CLUSTERS, *BEFORE, "--candidate-policies", str(candidate), "-o", "sarif")
    assert sarif.returncode == 1
    results = json.loads(sarif.stdout)["runs"][0]["results"]
    assert results and all(r["ruleId"].startswith("GDPR/") and r["level"] == "error" for r in results)
    location = results[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("eu-1/shop.yaml") and location["region"]["startLine"] == 11
    junit = run("simulate", *CLUSTERS, *BEFORE, "--candidate-policies", str(candidate), "-o", "junit")
    assert junit.returncode == 1 and ET.fromstring(junit.stdout).get("failures") == "1"


def test_the_same_policy_and_time_flip_nothing() -> None:
    result = run("simulate", *CLUSTERS, *BEFORE, "--time", "2026-11-26")
    assert result.returncode == 0, result.stderr
    assert "4 object(s) with a cross-cluster route decided in 3 cluster(s): 0 flip(s)" in result.stdout


def test_bad_input_exits_2_naming_what() -> None:
    cases = [
        ((*CLUSTERS,), "give a candidate"),
        ((*CLUSTERS, "--add-cluster", "ap-1"), "--add-cluster needs --region"),
        ((*CLUSTERS, "--add-cluster", "ap-1", "--region", "aws/mars-1", "--entity", "acme"), "unknown region"),
        ((*CLUSTERS, "--add-cluster", "eu-1", "--region", "aws/eu-central-1", "--entity", "acme"), "already declares"),
        ((*CLUSTERS, "--remove-cluster", "moon-1"), "declares no such cluster"),
        ((*CLUSTERS, "--time", "next tuesday"), "is not an ISO 8601"),
        (("moon-1=" + str(FIXTURES / "eu-1"), "--time", "2027-01-01"), "'moon-1' is not a cluster"),
        ((str(FIXTURES / "eu-1"), "--time", "2027-01-01"), "give the cluster it is applied to"),
        (("eu-1=/nonexistent", "--time", "2027-01-01"), "no such file or directory"),
        ((*CLUSTERS, "--time", "2027-01-01", "-o", "yaml"), "--output 'yaml'"),
    ]
    runner = CliRunner()
    for args, expected in cases:
        result = runner.invoke(app, ["simulate", *args], env={"COLUMNS": "300"})
        assert result.exit_code == 2, (args, result.output)
        assert expected in " ".join(result.stderr.split()), (args, result.stderr)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
