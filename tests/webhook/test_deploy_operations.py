"""deploy/components: the NetworkPolicy admits the API server, the proxies and Prometheus to the pods
and nobody else; the ServiceMonitor scrapes the Service's HTTPS port, verifying the serving certificate
(rendered with `kubectl kustomize deploy/overlays/production`, which uses both). That the server
answers /metrics on that port is tests/routing/test_metrics.py's and the webhook tests' part."""

from __future__ import annotations

from typing import Any

from .test_deploy import one, render


def objects() -> list[dict[str, Any]]:
    return render("overlays/production")


def test_network_policy_admits_only_the_api_server_proxies_and_prometheus() -> None:
    rendered = objects()
    policy = one(rendered, "NetworkPolicy", "policyengine")["spec"]
    pod = one(rendered, "Deployment", "policyengine")["spec"]["template"]
    assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["policyTypes"] == ["Ingress"]
    (server,) = [c for c in pod["spec"]["containers"] if c["name"] == "policyengine"]
    named = {p["name"] for p in server["ports"]}
    peers = []
    for rule in policy["ingress"]:
        assert rule["from"], "an empty from admits everyone"
        assert [p["port"] for p in rule["ports"]] == ["https"] and "https" in named
        (peer,) = rule["from"]
        peers.append(peer)
    api_server, proxies, prometheus = peers
    assert set(api_server) == {"ipBlock"} and api_server["ipBlock"]["cidr"] != "0.0.0.0/0"
    assert "except" not in api_server["ipBlock"]
    assert proxies == {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"policyengine.io/routing-client": "true"}},
    }
    assert prometheus["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}


def test_service_monitor_scrapes_the_https_port_with_the_serving_ca() -> None:
    rendered = objects()
    monitor = one(rendered, "ServiceMonitor", "policyengine")["spec"]
    service = one(rendered, "Service", "policyengine")
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["scheme"], endpoint["path"]) == ("https", "/metrics")
    certificate = one(rendered, "Certificate", "policyengine-tls")["spec"]
    assert endpoint["tlsConfig"]["serverName"] in certificate["dnsNames"]
    assert endpoint["tlsConfig"]["ca"]["secret"] == {"name": certificate["secretName"], "key": "ca.crt"}
