"""Logs carry no secrets or personal data: a run whose inputs hold a database password, an email
address and a token (in the database URL, authz query strings, an AdmissionReview's user and a refused
field) leaves none of them in the server's output, at log level info, access log included.

On the code before this the startup line printed the database URL with its password, and the access
log kept full authz paths with their query strings."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from routing.proxy_parts import start_policyengine
from webhook.harness import review
from webhook.objects import http_route

PASSWORD = "S3cret-Pw-7f1c"
EMAIL = "jane.doe@example.com"
TOKEN = "tok-9d2e51b7a4"
CATALOG = "spiffe://acme.example/ns/shop/sa/catalog"


def test_a_run_with_secrets_in_its_inputs_logs_none_of_them(tmp_path: Path, pg_url: str) -> None:
    user, _, rest = pg_url.partition("://")[2].partition("@")
    with_password = f"postgresql+psycopg://{user}:{PASSWORD}@{rest}"  # trust auth: any password is taken
    server = start_policyengine(tmp_path, with_password, extra=("--log-level", "info"))
    try:
        client = httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=10)
        host = {"host": "catalog.shop.svc.clusterset.local", "x-policyengine-source": CATALOG}
        envoy = client.get(f"/v1/authz/users/{EMAIL}/orders?email={EMAIL}&token={TOKEN}", headers=host)
        assert envoy.status_code == 200
        nginx = {**host, "x-original-method": "GET", "x-original-uri": f"/profile?email={EMAIL}&token={TOKEN}"}
        assert client.get(f"/v1/authz?token={TOKEN}", headers=nginx).status_code == 200
        assert client.post("/validate", json=review(http_route("shop", "profile"), username=EMAIL)).status_code == 200
        bad = review(http_route("shop", "profile"))
        bad["request"]["operation"] = f"PATCH {EMAIL}"  # refused: the message quotes it to the client only
        answer = client.post("/validate", json=bad)
        assert answer.status_code == 400
        refused = client.post(f"/v1/decide?token={TOKEN}", content=json.dumps({"service": f"{EMAIL}\u0000"}))
        assert 400 <= refused.status_code < 500
        client.close()
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    assert "policyengine serving cluster eu-1" in log and "***" in log  # the startup line, password masked
    assert '"GET /v1/authz/… HTTP/1.1" 200' in log and '"POST /validate HTTP/1.1" 400' in log  # access log on
    for secret in (PASSWORD, EMAIL, TOKEN):
        assert secret not in log, f"{secret!r} is in the server log:\n{log}"
    assert tracebacks_in(log) == []


def tracebacks_in(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Traceback" in line]




def test_the_plain_access_formatter_writes_uvicorns_line() -> None:
    """`PlainAccessFormatter` skips uvicorn's two copies of each record: its lines are uvicorn's own,
    for every status (an unknown one too) and level; with colours on it is uvicorn's formatter."""
    import logging

    from uvicorn.logging import AccessFormatter

    from policyengine.api.logs import PlainAccessFormatter, log_config

    fmt = log_config()["formatters"]["access"]["fmt"]
    ours, theirs = PlainAccessFormatter(fmt, use_colors=False), AccessFormatter(fmt, use_colors=False)
    for level in (logging.INFO, logging.WARNING, logging.CRITICAL):
        for status in (200, 204, 403, 404, 431, 503, 599):
            args = ("10.0.0.7:41234", "POST", "/v1/authz/…", "1.1", status)
            record = logging.LogRecord("uvicorn.access", level, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)
            twin = logging.LogRecord("uvicorn.access", level, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)
            assert ours.format(record) == theirs.format(twin), (level, status)
    coloured = PlainAccessFormatter(fmt, use_colors=True)
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "%s %s %s %s %d", args, None)
    assert coloured.format(record) == AccessFormatter(fmt, use_colors=True).format(record)
    assert "\x1b[" in coloured.format(record)
