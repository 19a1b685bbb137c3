"""`policyengine check` reads what the manifests show of the cluster: Namespace labels classify, and
EndpointSlices of other clusters are destinations (real command, a policy repo copy with a rule on
namespace labels, the regorus engine)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cli import run

from policyengine.resources import default_policies

LABEL_RULE = """classifications:
  - name: personal-namespaces
    match: {namespace_labels: {data-classification: personal}}
    data_classes: [personal]
    subjects: [EEA]
"""
NAMESPACE = """apiVersion: v1
kind: Namespace
metadata:
  name: team
  labels: {data-classification: %s}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: api, namespace: team}
"""
SLICE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-catalog, namespace: shop}
spec:
  parentRefs: [{name: mesh}]
  rules: [{backendRefs: [{group: multicluster.x-k8s.io, kind: ServiceImport, name: catalog}]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: imported-catalog-x
  namespace: shop
  labels: {multicluster.kubernetes.io/source-cluster: rogue-7, multicluster.kubernetes.io/service-name: catalog}
addressType: IPv4
endpoints: []
"""


def test_namespace_labels_and_endpoint_slices_among_the_manifests_decide(tmp_path: Path) -> None:
    repo = tmp_path / "policies"
    shutil.copytree(default_policies(), repo)
    rules = repo / "classifications.yaml"
    rules.write_text(rules.read_text().replace("classifications:\n", LABEL_RULE, 1))
    for label, code in (("personal", 1), ("public", 0)):
        (tmp_path / "team.yaml").write_text(NAMESPACE % label)
        result = run("check", str(tmp_path / "team.yaml"), "--cluster", "eu-1", "--policies", str(repo), "-o", "json")
        assert result.returncode == code, result.stderr
        (export,) = json.loads(result.stdout)["results"]
        assert export["regimes"] == (["GDPR"] if label == "personal" else [])
    (tmp_path / "slice.yaml").write_text(SLICE)
    result = run("check", str(tmp_path / "slice.yaml"), "--cluster", "eu-1", "-o", "json")
    assert result.returncode == 1, result.stderr
    (route,) = json.loads(result.stdout)["results"]
    (violation,) = route["violations"]
    assert violation["rule"] == "unknown-cluster" and violation["cluster"] == "rogue-7"
