"""/mutate and /validate on a real HTTPS server: every path (tag, rewrite, deny, warn, dryrun, skip),
patches applied with jsonpatch, idempotence, audit rows and their chain, metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from policyengine.audit.verify import verify

from .harness import Server, apply, patch_of, review
from .objects import config_map, deployment, exported_service, http_route

LABEL = "residency.policyengine.io/"


def answer(data: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = data["response"]
    return body


def test_deployment_is_tagged_keeping_its_labels_and_a_second_call_adds_nothing(server: Server) -> None:
    obj = deployment("shop", "checkout")
    first = server.mutate(obj)
    assert answer(first)["allowed"] is True
    tagged = apply(obj, patch_of(first))
    labels = tagged["metadata"]["labels"]
    assert labels[LABEL + "gdpr"] == "true"
    assert labels[LABEL + "home"] == "EEA"
    assert labels["app"] == "checkout" and labels["team"] == "payments"
    assert tagged["metadata"]["annotations"][LABEL + "regimes"] == "GDPR"
    assert tagged["spec"] == obj["spec"]
    assert patch_of(server.mutate(tagged)) == []  # reinvocationPolicy: IfNeeded is safe
    validated = answer(server.validate(tagged))
    assert validated["allowed"] is True and "auditAnnotations" not in validated  # not a routing kind


def test_rewrite_keeps_the_permitted_part_and_the_final_object_passes(server: Server) -> None:
    obj = http_route(
        "shop", "checkout-ledger"
    )  # GDPR data (shop-checkout rule), rewrite in shop, runs anywhere
    mutated = server.mutate(obj)
    body = answer(mutated)
    assert body["allowed"] is True
    assert body["auditAnnotations"]["outcome"] == "rewrite"
    patch = patch_of(mutated)
    assert patch, body
    final = apply(obj, patch)
    refs = [ref for rule in final["spec"]["rules"] for ref in rule["backendRefs"]]
    assert all(ref.get("kind") != "ServiceImport" for ref in refs), refs
    assert body["warnings"] and all(len(w) <= 120 for w in body["warnings"])
    assert patch_of(server.mutate(final)) == []
    assert answer(server.validate(final))["allowed"] is True
    # Without the mutation the same object is refused: /validate re-checks the final object.
    assert answer(server.validate(obj))["allowed"] is False


def test_deny_names_regime_article_service_regions_and_remedy(server: Server) -> None:
    obj = http_route("shop", "profile")  # PIPL data held in cn-1/hk-1, routed from eu-1; default deny
    body = answer(server.validate(obj))
    assert body["allowed"] is False
    assert body["status"]["code"] == 403
    message = body["status"]["message"]
    for part in ("PIPL", "Art.", "shop/profile", "eu-1", "cn-1", "Remedy"):
        assert part in message, (part, message)
    assert body["auditAnnotations"]["decision_id"]
    mutated = answer(server.mutate(obj))
    assert mutated["allowed"] is True and "patch" not in mutated  # deny is not rewritten


def test_warn_allows_with_short_warnings(server: Server) -> None:
    body = answer(server.validate(http_route("warned", "ledger")))
    assert body["allowed"] is True
    assert body["auditAnnotations"]["enforcement"] == "warn"
    assert body["warnings"] and all(len(w) <= 120 for w in body["warnings"])
    assert any("GDPR" in w for w in body["warnings"])


def test_dryrun_enforcement_allows_and_only_audits(server: Server) -> None:
    body = answer(server.validate(http_route("sandbox", "ledger")))
    assert body["allowed"] is True and "warnings" not in body
    decision_id = body["auditAnnotations"]["decision_id"]
    row = audit_row(server, decision_id)
    assert row["enforcement"] == "dryrun" and row["decision"] == "deny"


def test_dry_run_request_is_decided_and_audited_as_dry_run(server: Server) -> None:
    body = answer(server.post_review("/validate", review(http_route("shop", "profile"), dry_run=True)))
    assert body["allowed"] is False
    row = audit_row(server, body["auditAnnotations"]["decision_id"])
    assert bool(row["dry_run"]) is True and row["source"] == "admission"
    other = answer(server.validate(http_route("shop", "profile", name="other")))
    assert bool(audit_row(server, other["auditAnnotations"]["decision_id"])["dry_run"]) is False


def test_update_is_checked_like_create(server: Server) -> None:
    old = http_route("shop", "catalog")
    new = http_route("shop", "profile")
    body = answer(server.post_review("/validate", review(new, operation="UPDATE", old=old)))
    assert body["allowed"] is False
    assert audit_row(server, body["auditAnnotations"]["decision_id"])["operation"] == "UPDATE"


def test_hand_edited_tag_cannot_opt_a_service_out(server: Server) -> None:
    forged = exported_service("payments", labels={LABEL + "gdpr": "false", LABEL + "home": "US"})
    body = answer(server.validate(forged))
    assert body["allowed"] is False and "GDPR" in body["status"]["message"]
    fixed = apply(forged, patch_of(server.mutate(forged)))
    assert fixed["metadata"]["labels"][LABEL + "gdpr"] == "true"
    assert fixed["metadata"]["labels"][LABEL + "home"] == "EEA"


def test_delete_unknown_kinds_and_own_requests_pass_untouched_and_unaudited(server: Server) -> None:
    before = len(server.audit_rows())
    denied = http_route("shop", "profile")
    cases = [
        review(None, operation="DELETE", old=denied),
        review(config_map()),
        review(denied, username="system:serviceaccount:policyengine-system:policyengine"),
        review({**denied, "metadata": {"name": "x", "namespace": "policyengine-system"}}),
    ]
    for path in ("/mutate", "/validate"):
        for case in cases:
            body = answer(server.post_review(path, case))
            assert body == {"uid": case["request"]["uid"], "allowed": True}, (path, case["request"])
    assert len(server.audit_rows()) == before


def test_every_decision_is_one_audit_row_and_the_chain_verifies(server: Server) -> None:
    before = {row["decision_id"] for row in server.audit_rows()}
    ids = []
    for obj in (http_route("shop", "profile"), http_route("sandbox", "ledger"), exported_service("warned")):
        for path in ("/mutate", "/validate"):
            ids.append(answer(server.post_review(path, review(obj)))["auditAnnotations"]["decision_id"])
    assert "auditAnnotations" not in answer(server.mutate(deployment()))  # tagging is not a decision
    after = {row["decision_id"] for row in server.audit_rows()}
    assert after - before == set(ids) and len(set(ids)) == 6
    engine = sa.create_engine(server.audit_url)
    try:
        report = verify(engine)
    finally:
        engine.dispose()
    assert report.ok, report


def test_decisions_equal_policyengine_check_on_the_same_manifests(server: Server, tmp_path: Path) -> None:
    objects = [
        http_route("shop", "profile", name="a"),
        http_route("shop", "catalog", name="b"),
        http_route("shop", "checkout-ledger", name="c"),
        exported_service("payments"),
        http_route("warned", "ledger", name="d"),
        http_route("sandbox", "ledger", name="e"),
    ]
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(yaml.safe_dump_all(objects))
    command = [sys.executable, "-m", "policyengine.cli.main", "check", str(manifests), "--cluster", "eu-1"]
    command += ["--policies", str(server.policies), "-o", "json"]
    out = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout, out.stderr
    checked = {(r["resource"]["kind"], r["resource"]["name"]): r for r in json.loads(out.stdout)["results"]}
    assert len(checked) == len(objects)
    for obj in objects:
        offline = checked[(obj["kind"], obj["metadata"]["name"])]
        row = audit_row(server, answer(server.validate(obj))["auditAnnotations"]["decision_id"])
        assert (row["decision"], row["enforcement"]) == (offline["decision"], offline["enforcement"]), obj
        assert row["policy_revision"] == json.loads(out.stdout)["policy_revision"]
        stored = row["violations"] if isinstance(row["violations"], list) else json.loads(row["violations"])
        assert sorted((v["regime"], v["rule"], v["cluster"]) for v in stored) == sorted(
            (v["regime"], v["rule"], v["cluster"]) for v in offline["violations"]
        )


def test_metrics_count_requests_by_endpoint_kind_and_decision(server: Server) -> None:
    labels = {"endpoint": "validate", "kind": "HTTPRoute", "decision": "deny"}
    before = server.metric("policyengine_admission_requests_total", **labels)
    for _ in range(3):
        server.validate(http_route("shop", "profile"))
    assert server.metric("policyengine_admission_requests_total", **labels) == before + 3
    assert server.metric("policyengine_admission_request_duration_seconds_count", **labels) >= 3
    assert server.metric("policyengine_admission_violations_total", regime="PIPL", enforcement="deny") >= 3


def audit_row(server: Server, decision_id: str) -> dict[str, Any]:
    rows = [row for row in server.audit_rows() if row["decision_id"] == decision_id]
    assert len(rows) == 1, (decision_id, len(rows))
    return rows[0]
