"""Authentication where it belongs, as Gatekeeper offers it, over real TLS with certificates made here:
the webhooks require the API server's client certificate (`--client-ca`, `--client-cn`); /v1/decide,
/v1/authz, /openapi.json and /metrics take a bearer token or a client certificate when configured;
/metrics can move to a plain port for Prometheus; TLS 1.2 offers AEAD suites only, and 1.3 can be the
floor.

On the code before these flags every endpoint answered anyone, and TLS 1.2 offered two CBC suites."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import raw_http
from client_certs import ClientCA, ClientCertificate
from webhook.harness import ADMIN_TOKEN, Server, free_port, review, ssl_context, start_server
from webhook.objects import http_route

from edges.conftest import tracebacks

API_TOKEN = "api-token-" + "t" * 30
CATALOG = "spiffe://acme.example/ns/shop/sa/catalog"
AUTHZ_HEADERS = {"host": "catalog.shop.svc.clusterset.local", "x-policyengine-source": CATALOG}
ROUTE = {"service": "shop/checkout", "source": {"cluster": "eu-1"}, "destination": {"cluster": "us-1"}}
REVIEW = review(http_route("shop", "profile"))


@dataclass
class Secured:
    server: Server
    apiserver: ClientCertificate  # issued by the webhook CA, common name kube-apiserver
    impostor: ClientCertificate  # issued by the webhook CA, another common name
    gateway: ClientCertificate  # issued by the API CA
    stranger: ClientCertificate  # issued by a CA the server does not know
    metrics_port: int

    def client(self, cert: ClientCertificate | None = None) -> httpx.Client:
        context = ssl_context(self.server.ca)
        if cert is not None:
            context.load_cert_chain(str(cert.cert), str(cert.key))
        return httpx.Client(base_url=self.server.base_url, verify=context, timeout=10)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    tmp = tmp_path_factory.mktemp("access")
    webhook_ca = ClientCA.create(tmp / "webhook-ca", "API server client CA")
    api_ca = ClientCA.create(tmp / "api-ca", "gateway CA")
    other_ca = ClientCA.create(tmp / "other-ca", "unknown CA")
    tokens = tmp / "api-tokens"
    tokens.write_text(f"# tokens of the gateways\n{API_TOKEN}\n")
    metrics_port = free_port()
    server = start_server(
        tmp,
        "--client-ca", str(webhook_ca.cert_file), "--client-cn", "kube-apiserver",
        "--api-client-ca", str(api_ca.cert_file), "--api-token-file", str(tokens),
        "--metrics-port", str(metrics_port), "--no-metrics-on-https",
    )  # fmt: skip
    yield Secured(
        server,
        webhook_ca.issue("apiserver", common_name="kube-apiserver"),
        webhook_ca.issue("impostor", common_name="system:anonymous"),
        api_ca.issue("gateway", uris=("spiffe://acme.example/ns/gateways/sa/nginx",)),
        other_ca.issue("stranger", common_name="kube-apiserver"),
        metrics_port,
    )
    server.stop()


@pytest.mark.parametrize("path", ["/validate", "/mutate"])
def test_webhooks_require_the_api_servers_client_certificate(secured: Secured, path: str) -> None:
    with secured.client() as anonymous:
        answer = anonymous.post(path, json=REVIEW)
        assert answer.status_code == 401, answer.text
        assert "client certificate" in answer.json()["error"] and "--client-ca" in answer.json()["remedy"]
    with secured.client(secured.impostor) as impostor:
        answer = impostor.post(path, json=REVIEW)
        assert answer.status_code == 403 and "kube-apiserver" in answer.json()["error"], answer.text
    with secured.client(secured.gateway) as gateway:  # trusted for the API, not for the webhooks
        answer = gateway.post(path, json=REVIEW)
        assert answer.status_code == 403 and "not by a CA this endpoint trusts" in answer.json()["error"]
    with secured.client(secured.apiserver) as apiserver:
        answer = apiserver.post(path, json=REVIEW)
        assert answer.status_code == 200, answer.text
        assert answer.json()["response"]["uid"] == REVIEW["request"]["uid"]


def test_a_certificate_of_an_unknown_ca_fails_the_handshake(secured: Secured) -> None:
    with secured.client(secured.stranger) as stranger, pytest.raises(httpx.TransportError):
        stranger.post("/validate", json=REVIEW)


def test_probes_need_no_credentials(secured: Secured) -> None:
    with secured.client() as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("POST", "/v1/decide", ROUTE, {}),
        ("GET", "/v1/authz", None, {**AUTHZ_HEADERS, "x-original-method": "GET"}),
        ("POST", "/v1/authz/cart", None, AUTHZ_HEADERS),
        ("GET", "/openapi.json", None, {}),
    ],
)
def test_the_api_takes_a_bearer_token_or_a_client_certificate(
    secured: Secured, method: str, path: str, body: object, headers: dict[str, str]
) -> None:
    def call(client: httpx.Client, extra: dict[str, str] | None = None) -> httpx.Response:
        return client.request(method, path, json=body, headers={**headers, **(extra or {})})

    with secured.client() as anonymous:
        answer = call(anonymous)
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert call(anonymous, {"authorization": "Bearer nope"}).status_code == 401
        answer = call(anonymous, {"authorization": f"Bearer {API_TOKEN}"})
        assert answer.status_code == 200, answer.text
    with secured.client(secured.gateway) as gateway:
        assert call(gateway).status_code == 200
    with secured.client(secured.apiserver) as apiserver:  # trusted for the webhooks only
        assert call(apiserver).status_code == 403


def test_metrics_move_to_a_plain_port(secured: Secured) -> None:
    with secured.client(secured.gateway) as gateway:
        moved = gateway.get("/metrics")
        assert moved.status_code == 404 and str(secured.metrics_port) in moved.json()["error"]
    plain = httpx.get(f"http://127.0.0.1:{secured.metrics_port}/metrics", timeout=10)
    assert plain.status_code == 200
    assert "policyengine_admission_requests_total" in plain.text


def test_metrics_on_https_take_the_api_credentials(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(API_TOKEN + "\n")
    server = start_server(tmp_path, "--api-token-file", str(tokens))
    try:
        assert server.client.get("/metrics").status_code == 401
        answer = server.client.get("/metrics", headers={"authorization": f"Bearer {API_TOKEN}"})
        assert answer.status_code == 200 and "policyengine_server_ready" in answer.text
        assert server.client.post("/validate", json=REVIEW).status_code == 200  # webhooks stay open
    finally:
        server.stop()


def test_the_admin_api_takes_its_token_or_an_admin_client_certificate(tmp_path: Path) -> None:
    admin_ca = ClientCA.create(tmp_path / "admin-ca", "admin CA")
    operator = admin_ca.issue("operator")
    server = start_server(tmp_path, "--admin-client-ca", str(admin_ca.cert_file))
    try:
        assert server.client.post("/v1/admin/reload").status_code == 401
        token = server.client.post("/v1/admin/reload", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        assert token.status_code == 200
        context = ssl_context(server.ca)
        context.load_cert_chain(str(operator.cert), str(operator.key))
        with httpx.Client(base_url=server.base_url, verify=context, timeout=10) as client:
            assert client.post("/v1/admin/reload").status_code == 200
    finally:
        server.stop()


def handshake(server: Server, *, max_version: ssl.TLSVersion | None = None, ciphers: str | None = None) -> str:
    """The TLS version agreed with the server, or the handshake's error."""
    context = ssl_context(server.ca)
    if max_version is not None:
        context.maximum_version = max_version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    try:
        with raw_http.connect(server.port, context) as sock:
            return f"{sock.version()} {sock.cipher()[0]}"  # type: ignore[index]
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc}"


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("tls"))
    yield running
    running.stop()


@pytest.mark.parametrize("cbc", ["ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA"])
def test_tls12_offers_no_cbc_suite(default_server: Server, cbc: str) -> None:
    assert handshake(default_server, max_version=ssl.TLSVersion.TLSv1_2, ciphers=cbc).startswith("refused")


def test_tls12_with_aead_and_tls13_are_served(default_server: Server) -> None:
    agreed = handshake(default_server, max_version=ssl.TLSVersion.TLSv1_2)
    assert agreed.startswith("TLSv1.2") and ("GCM" in agreed or "CHACHA20" in agreed), agreed
    assert handshake(default_server).startswith("TLSv1.3")


def test_tls_min_version_13_refuses_tls12(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--tls-min-version", "1.3")
    try:
        assert handshake(server, max_version=ssl.TLSVersion.TLSv1_2).startswith("refused")
        assert handshake(server).startswith("TLSv1.3")
        assert server.client.post("/validate", json=REVIEW).status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--client-cn", "kube-apiserver"), "--client-cn needs --client-ca"),
        (("--client-ca", "/nonexistent/ca.crt"), "--client-ca /nonexistent/ca.crt"),
        (("--api-token-file", "/dev/null"), "holds no token"),
        (("--tls-min-version", "1.1"), "tls-min-version"),
    ],
)
def test_bad_access_flags_stop_the_server_saying_which(tmp_path: Path, flags: tuple[str, ...], words: str) -> None:
    with pytest.raises(AssertionError) as failed:
        start_server(tmp_path, *flags)
    assert words in str(failed.value) and "Traceback" not in str(failed.value)


def test_nothing_here_logged_a_traceback(secured: Secured) -> None:
    assert tracebacks(secured.server) == []
