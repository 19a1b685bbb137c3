"""The proxy configs in deploy/proxies/: the Envoy one has the fields the filter relies on (no Envoy
binary installs here, so it is checked structurally); the nginx one is also run end to end, and here its
routing is checked to reach declared upstream blocks only. `nginx -t` validates the rendered file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from policyengine.api.tls import make_dev_certificates
from routing.parts import REPO
from routing.proxy_parts import NGINX_TEMPLATE, nginx_binary, render_nginx

ENVOY = REPO / "deploy" / "proxies" / "envoy.yaml"


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_walk(item))
    return found


def _patterns(block: dict[str, Any]) -> set[str]:
    return {p["exact"] for p in block["patterns"]}


def test_envoy_ext_authz_fails_closed_and_routes_by_the_cluster_header() -> None:
    config = yaml.safe_load(ENVOY.read_text())
    filters = [n for n in _walk(config) if n.get("name") == "envoy.filters.http.ext_authz"]
    assert len(filters) == 1
    authz = filters[0]["typed_config"]
    assert authz["failure_mode_allow"] is False
    assert authz["clear_route_cache"] is True
    service = authz["http_service"]
    assert service["path_prefix"] == "/v1/authz"
    sent = _patterns(service["authorization_request"]["allowed_headers"])
    assert {"x-forwarded-client-cert", "sec-gpc"} <= sent
    assert "x-policyengine-source" not in sent  # a client could set it: the caller is the verified XFCC
    assert {"x-policyengine-cluster", "x-policyengine-decision-id"} <= _patterns(
        service["authorization_response"]["allowed_upstream_headers"]
    )
    clusters = {c["name"] for c in config["static_resources"]["clusters"]}
    assert service["server_uri"]["cluster"] in clusters

    routes = [n for n in _walk(config) if "match" in n and ("route" in n or "direct_response" in n)]
    by_header = {}
    for route in routes:
        for header in route["match"].get("headers", []):
            assert header["name"] == "x-policyengine-cluster"
            by_header[header["string_match"]["exact"]] = route["route"]["cluster"]
    assert by_header == {"eu-1": "eu-1", "us-1": "us-1"}
    assert set(by_header.values()) <= clusters
    fallback = routes[-1]
    assert "headers" not in fallback["match"] and fallback["direct_response"]["status"] == 403


def test_envoy_derives_the_caller_from_the_verified_client_certificate() -> None:
    config = yaml.safe_load(ENVOY.read_text())
    managers = [n for n in _walk(config) if n.get("name") == "envoy.filters.network.http_connection_manager"]
    assert [m["typed_config"]["forward_client_cert_details"] for m in managers] == ["SANITIZE_SET"]
    assert managers[0]["typed_config"]["set_current_client_cert_details"]["uri"] is True
    listener = config["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"]["typed_config"]
    assert listener["require_client_certificate"] is True
    assert listener["common_tls_context"]["validation_context"]["trusted_ca"]
    policyengine = next(c for c in config["static_resources"]["clusters"] if c["name"] == "policyengine")
    upstream = policyengine["transport_socket"]["typed_config"]["common_tls_context"]
    assert upstream["tls_certificates"] and upstream["validation_context"]["trusted_ca"]


def test_nginx_proxies_only_to_declared_upstream_blocks() -> None:
    text = NGINX_TEMPLATE.read_text()
    assert re.search(r"auth_request\s+/_policyengine/authz;", text)
    assert re.search(r"auth_request_set\s+\$pe_cluster\s+\$upstream_http_x_policyengine_cluster;", text)
    upstream_blocks = set(re.findall(r"^\s*upstream\s+(\S+)\s*\{", text, re.M))
    proxied = re.findall(r"^\s*proxy_pass\s+(\S+);", text, re.M)
    assert proxied == ["http://$pe_upstream", "https://policyengine/v1/authz"]
    mapping = re.search(r"map \$pe_cluster \$pe_upstream \{(.*?)\}", text, re.S)
    assert mapping is not None
    targets = {line.split()[1].rstrip(";") for line in mapping.group(1).strip().splitlines() if line.strip()}
    assert targets <= upstream_blocks  # every cluster name (and the default) leads to a declared block
    assert "default policyengine_undeclared_cluster;" in mapping.group(1)


def test_nginx_sends_policyengine_no_identity_the_client_claimed() -> None:
    text = NGINX_TEMPLATE.read_text()
    assert re.search(r"^\s*ssl_verify_client\s+on;", text, re.M)
    authz = re.search(r"location = /_policyengine/authz \{(.*?)\n        \}", text, re.S)
    assert authz is not None
    block = authz.group(1)
    assert re.search(r"proxy_pass_request_headers\s+off;", block)  # none of the client's headers
    assert re.search(r"proxy_set_header X-Forwarded-Client-Cert \$pe_client_identity;", block)
    assert "$http_x_policyengine_source" not in text and "$http_x_forwarded_client_cert;" not in text
    assert re.search(r"proxy_method\s+HEAD;", block)  # keep-alive to policyengine (see the e2e test)


def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    binary = nginx_binary()
    certs = make_dev_certificates(tmp_path / "tls")
    conf = render_nginx(
        NGINX_TEMPLATE,
        tmp_path,
        {
            "PREFIX": str(tmp_path),
            "LISTEN": "127.0.0.1:1",
            "GATEWAY_CERT": str(certs.cert),
            "GATEWAY_KEY": str(certs.key),
            "CLIENT_CA": str(certs.ca_cert),
            "AUTHZ": "127.0.0.1:2",
            "AUTHZ_NAME": "localhost",
            "AUTHZ_CA": str(certs.ca_cert),
            "AUTHZ_CLIENT_CERT": str(certs.cert),
            "AUTHZ_CLIENT_KEY": str(certs.key),
            "EU_1": "127.0.0.1:3",
            "US_1": "127.0.0.1:4",
        },
    )
    result = subprocess.run(
        [binary, "-t", "-p", str(tmp_path), "-c", str(conf), "-g", f"pid {tmp_path}/pid; error_log stderr;"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
