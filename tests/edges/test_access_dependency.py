"""`policyengine.api.access.requires` as other endpoints use it (the audit pages): a FastAPI dependency
that lets only an audience's callers through, answered by the app's handler. In process (TestClient, no
TLS), so only the bearer-token half is exercised here; certificates are in test_access.py."""

from __future__ import annotations

from fastapi import Depends
from fastapi.testclient import TestClient

from policyengine.api import access
from policyengine.api.app import create_app
from policyengine.api.settings import Settings
from policyengine.resources import default_policies

TOKEN = "admin-" + "z" * 30


def app_with_page(admin_token: str | None) -> TestClient:
    app = create_app(Settings(cluster="eu-1", policies=default_policies(), admin_token=admin_token))

    @app.get("/audit/page", dependencies=[Depends(access.requires(access.ADMIN))])
    async def page() -> dict[str, str]:
        return {"page": "audit"}

    return TestClient(app)


def test_requires_admits_the_admin_token_only() -> None:
    client = app_with_page(TOKEN)
    refused = client.get("/audit/page")
    assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
    assert client.get("/audit/page", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/audit/page", headers={"authorization": f"Bearer {TOKEN}"}).json() == {"page": "audit"}


def test_requires_is_off_without_admin_credentials() -> None:
    off = app_with_page(None).get("/audit/page")
    assert off.status_code == 404 and "--admin-token-file" in off.json()["remedy"]
