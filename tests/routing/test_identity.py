"""Parsing of source identities, XFCC and hosts, and of the proxies' authz requests."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from client_certs import ClientCA
from starlette.datastructures import Headers

from policyengine.routing.adapters import denial_header, read_authz_request
from policyengine.routing.identity import (
    RequestProblem,
    identity_from_xfcc,
    parse_host,
    parse_identity,
    service_of_host,
)

CHECKOUT = "spiffe://acme.example/ns/shop/sa/checkout"
CATALOG = "spiffe://acme.example/ns/shop/sa/catalog"


def test_spiffe_id_names_namespace_and_account() -> None:
    identity = parse_identity(CHECKOUT, "x-policyengine-source")
    assert (identity.value, identity.namespace, identity.name) == (CHECKOUT, "shop", "checkout")
    assert identity.workload == "shop/checkout"


def test_other_spiffe_paths_are_identities_without_workload() -> None:
    identity = parse_identity("spiffe://acme.example/region/eu/gateway", "h")
    assert identity.workload is None


def test_service_name_is_accepted() -> None:
    assert parse_identity("shop/catalog", "h").workload == "shop/catalog"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "hello",
        "spiffe://",
        "spiffe://acme.example",
        "spiffe://Acme Example/ns/shop",
        "spiffe://acme.example/ns/../sa/x",
        "spiffe://acme.example/ns//sa/x",
        "http://acme.example/ns/shop/sa/checkout",
        "spiffe://acme.example/" + "a" * 3000,
    ],
)
def test_garbage_identities_are_problems_naming_the_header(raw: str) -> None:
    with pytest.raises(RequestProblem) as err:
        parse_identity(raw, "x-policyengine-source")
    assert err.value.where == "x-policyengine-source"
    assert err.value.remedy


def test_xfcc_takes_the_uri_of_the_nearest_client() -> None:
    xfcc = (
        "By=spiffe://acme.example/ns/edge/sa/gw;Hash=aa;URI=spiffe://acme.example/ns/shop/sa/billing,"
        'By=spiffe://acme.example/ns/shop/sa/catalog;Hash=bb;Subject="CN=x,O=y";URI=' + CHECKOUT
    )
    assert identity_from_xfcc(xfcc) == CHECKOUT
    assert identity_from_xfcc(f'Hash=1;URI="{CHECKOUT}"') == CHECKOUT
    assert identity_from_xfcc('Hash=1;Subject="CN=a"') is None


def test_hosts_lose_port_and_case() -> None:
    assert (
        parse_host("Checkout.Shop.svc.clusterset.local:8443", "Host") == "checkout.shop.svc.clusterset.local"
    )
    assert service_of_host("cart.shop.svc.cluster.local") == "shop/cart"
    assert service_of_host("cart.shop") == "shop/cart"
    assert service_of_host("www.example.com") is None
    for bad in ("", "[::1]:80", "a b", "host:port", "x" * 300):
        with pytest.raises(RequestProblem):
            parse_host(bad, "Host")


def test_nginx_subrequest_is_read_from_original_headers() -> None:
    headers = Headers(
        {
            "host": "catalog.shop.svc.clusterset.local",
            "x-original-uri": "/items?id=3",
            "x-original-method": "post",
            "x-policyengine-source": CHECKOUT,
            "sec-gpc": "1",
        }
    )
    req = read_authz_request(headers, "GET", "")
    assert (req.proxy, req.method, req.path, req.opt_out) == ("nginx", "POST", "/items?id=3", True)
    assert req.source.workload == "shop/checkout"


def test_envoy_request_uses_path_under_prefix_and_xfcc() -> None:
    headers = Headers({"host": "billing.shop:80", "x-forwarded-client-cert": f"Hash=1;URI={CHECKOUT}"})
    req = read_authz_request(headers, "delete", "v2/invoices/7")
    assert (req.proxy, req.method, req.path, req.host) == (
        "envoy",
        "DELETE",
        "/v2/invoices/7",
        "billing.shop",
    )
    assert req.source.value == CHECKOUT
    assert req.opt_out is False


@pytest.mark.parametrize(
    ("headers", "where"),
    [
        ({"x-policyengine-source": CHECKOUT}, "Host"),
        ({"host": "catalog.shop"}, "x-policyengine-source / x-forwarded-client-cert"),
        ({"host": "catalog.shop", "x-forwarded-client-cert": "Hash=1"}, "x-forwarded-client-cert"),
        ({"host": "catalog.shop", "x-policyengine-source": CHECKOUT, "sec-gpc": "yes"}, "Sec-GPC"),
        (
            {"host": "catalog.shop", "x-policyengine-source": CHECKOUT, "x-original-uri": "/"},
            "X-Original-Method",
        ),
    ],
)
def test_missing_or_bad_headers_say_which(headers: dict[str, str], where: str) -> None:
    with pytest.raises(RequestProblem) as err:
        read_authz_request(Headers(headers), "GET", "")
    assert err.value.where == where


def test_a_configured_source_header_is_used() -> None:
    headers = Headers({"host": "catalog.shop", "x-caller": "shop/billing"})
    assert read_authz_request(headers, "GET", "", source_header="x-caller").source.value == "shop/billing"


def test_denial_header_stays_small_and_ascii() -> None:
    body = {
        "allowed": False,
        "reason": "r" * 200,
        "decision_id": "d",
        "violations": [{"regime": "GDPR", "article": "Art. 44", "cluster": "us-1", "remedy": "é" * 2000}] * 5,
    }
    text = denial_header(body)
    assert len(text) <= 3072
    assert text.isascii()
    assert "GDPR" in text


def test_xfcc_cert_field_gives_the_spiffe_uri_san(tmp_path: Path) -> None:
    """nginx forwards the verified client certificate as `Cert="<URL-encoded PEM>"` (Envoy's XFCC field)."""
    ca = ClientCA.create(tmp_path / "ca")
    caller = ca.issue("checkout", uris=("https://example.com/not-spiffe", CHECKOUT))
    pem = caller.cert.read_text()
    assert identity_from_xfcc(f'Cert="{urllib.parse.quote(pem)}"') == CHECKOUT
    assert identity_from_xfcc(f'Hash=ab;Cert="{urllib.parse.quote(pem)}";URI={CATALOG}') == CATALOG  # URI= first
    plain = ca.issue("plain")
    assert identity_from_xfcc(f'Cert="{urllib.parse.quote(plain.cert.read_text())}"') is None
    with pytest.raises(RequestProblem, match="not a PEM certificate"):
        identity_from_xfcc('Cert="-----BEGIN%20CERTIFICATE-----garbage"')
