"""`policyengine serve` mounts the audit page: a real server (tests/webhook/harness.py) decides a route,
and /audit, behind its admin token, lists that decision and explains it under the served revision."""

from __future__ import annotations

from pathlib import Path

from webhook.harness import ADMIN_TOKEN, start_server


def test_serve_mounts_the_audit_page(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        decision = server.decide()  # shop/checkout eu-1 -> us-1: us-1 refused (GDPR, SCC expired)
        assert decision["outcome"] == "rewrite"  # the shop namespace rewrites GDPR refusals
        assert server.client.get("/audit", follow_redirects=False).status_code == 303  # to the login form
        bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        listing = server.client.get("/audit", params={"outcome": "rewrite"}, headers=bearer)
        assert listing.status_code == 200 and decision["decision_id"] in listing.text
        assert "eu-1 → us-1" in listing.text
        page = server.client.get(f"/audit/decisions/{decision['decision_id']}", headers=bearer)
        assert page.status_code == 200, page.text
        assert decision["policy_revision"] in page.text
        assert "Explanation re-derived" in page.text and 'class="explain-steps"' in page.text
        assert "GDPR at us-1" in page.text
        missing = server.client.get("/audit/decisions/no-such-id", headers=bearer)
        assert missing.status_code == 404 and "no decision" in missing.text
    finally:
        server.stop()
