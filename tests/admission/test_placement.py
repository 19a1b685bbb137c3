"""clusters.yaml `network` and `linkerd_link` place Istio endpoints and Linkerd mirrors (real policy repo
copy, real loader; the extractors read them through LoadedPolicy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from policyengine.admission.extract import ExtractionContext, extract_crossings
from policyengine.policy import PolicyError, load_policy
from policyengine.resources import default_policies


def repo_with(tmp_path: Path, old: str, new: str) -> Path:
    repo = tmp_path / "policies"
    shutil.copytree(default_policies(), repo)
    clusters = repo / "clusters.yaml"
    text = clusters.read_text()
    assert old in text
    clusters.write_text(text.replace(old, new, 1))
    return repo


def test_network_places_an_endpoint_and_an_unknown_network_is_unknown(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, "    locality: us-east-1\n", "    locality: us-east-1\n    network: net-us\n")
    policy = load_policy(repo)
    assert policy.clusters_in_network("net-us") == ["us-1"] and policy.clusters_in_network("") == []
    entry = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {"name": "vm", "namespace": "shop"},
        "spec": {"address": "10.0.0.9", "network": "net-us", "labels": {"app": "checkout"}},
    }
    (crossing,) = extract_crossings(entry, ExtractionContext("eu-1", policy))
    assert (crossing.service, crossing.destination, crossing.known) == ("shop/checkout", "us-1", True)
    entry["spec"]["network"] = "net-mars"
    (crossing,) = extract_crossings(entry, ExtractionContext("eu-1", policy))
    assert (crossing.destination, crossing.known) == ("network net-mars", False)


def test_linkerd_link_names_the_mirror_suffix(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, "    locality: us-east-1\n", "    locality: us-east-1\n    linkerd_link: virginia\n")
    policy = load_policy(repo)
    route = {
        "apiVersion": "policy.linkerd.io/v1beta3",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "shop"},
        "spec": {"rules": [{"backendRefs": [{"name": "checkout-virginia", "port": 8080}]}]},
    }
    (crossing,) = extract_crossings(route, ExtractionContext("eu-1", policy))
    assert (crossing.service, crossing.destination) == ("shop/checkout", "us-1")
    route["spec"]["rules"][0]["backendRefs"][0]["name"] = "checkout-us-1"  # the name is no longer its link
    assert extract_crossings(route, ExtractionContext("eu-1", policy)) == []


def test_a_link_name_used_twice_is_an_error(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, "    locality: us-east-1\n", "    locality: us-east-1\n    linkerd_link: eu-1\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(repo)
    assert any("duplicate linkerd_link 'eu-1'" in p.message for p in caught.value.problems)
