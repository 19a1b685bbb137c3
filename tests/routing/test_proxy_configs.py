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
    assert {"x-forwarded-client-cert", "x-policyengine-source", "sec-gpc"} <= _patterns(
        service["authorization_request"]["allowed_headers"]
    )
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


def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    binary = nginx_binary()
    certs = make_dev_certificates(tmp_path / "tls")
    conf = render_nginx(
        NGINX_TEMPLATE,
        tmp_path,
        {
            "PREFIX": str(tmp_path),
            "LISTEN": "127.0.0.1:1",
            "AUTHZ": "127.0.0.1:2",
            "AUTHZ_NAME": "localhost",
            "AUTHZ_CA": str(certs.ca_cert),
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
