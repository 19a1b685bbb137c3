"""deploy/base's RBAC, rendered by `kubectl kustomize`, grants exactly what the code reads and writes: the
kinds of policyengine/k8s/kinds.py (one definition), read-only except the scan's reports and its Lease."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.k8s import kinds

ROOT = Path(__file__).resolve().parents[2]
READ = {"get", "list", "watch"}
WRITE = {"create", "update", "patch"}


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is required to render deploy/base (scripts/system-deps.sh installs it)")
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / "base")], capture_output=True, text=True,
                         check=True, timeout=120).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


def grants(objects: list[dict[str, Any]], *role_kinds: str) -> dict[tuple[str, str], set[str]]:
    """(group, resource) -> verbs, over every rule of the roles of `role_kinds`."""
    out: dict[tuple[str, str], set[str]] = {}
    for obj in objects:
        if obj["kind"] in role_kinds:
            for rule in obj["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_cluster_roles_read_exactly_the_watched_and_scanned_kinds_and_write_only_reports(
    rendered: list[dict[str, Any]],
) -> None:
    cluster = grants(rendered, "ClusterRole")
    read = {(g, r) for (g, r), verbs in cluster.items() if verbs & READ}
    expected_read = {(k.group, k.plural) for k in kinds.READ}
    reports = {(k.group, k.plural) for k in kinds.REPORTS}
    assert read - reports == expected_read
    for resource in expected_read:
        assert cluster[resource] == READ, f"{resource}: {cluster[resource]}"
    written = {resource for resource, verbs in cluster.items() if verbs & WRITE}
    assert written == reports
    for resource in reports:
        assert cluster[resource] == {"get", "list", *WRITE}  # read to update in place; never delete
    assert all("*" not in verbs and "delete" not in verbs for verbs in cluster.values())


def test_the_namespaced_role_writes_only_the_scan_lease(rendered: list[dict[str, Any]]) -> None:
    (role,) = [o for o in rendered if o["kind"] == "Role"]
    assert role["metadata"]["namespace"] == "policyengine-system"
    lease = (kinds.LEASE.group, kinds.LEASE.plural)
    namespaced = grants(rendered, "Role")
    assert namespaced[lease] == {"get", *WRITE}
    assert {r for r, verbs in namespaced.items() if verbs & WRITE} == {lease}
    named = [r for r in role["rules"] if r["resources"] == ["leases"] and "update" in r["verbs"]]
    assert named and named[0]["resourceNames"] == ["policyengine-scan"]


def test_the_bindings_and_the_deployment_use_them(rendered: list[dict[str, Any]]) -> None:
    bindings = {o["metadata"]["name"]: o for o in rendered if o["kind"] in ("ClusterRoleBinding", "RoleBinding")}
    roles = {o["metadata"]["name"] for o in rendered if o["kind"] in ("ClusterRole", "Role")}
    assert {b["roleRef"]["name"] for b in bindings.values()} == roles
    for binding in bindings.values():
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "policyengine",
                                        "namespace": "policyengine-system"}]  # fmt: skip
    (deployment,) = [o for o in rendered if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "policyengine" and pod["automountServiceAccountToken"] is True
    (server,) = pod["containers"]
    assert {"--in-cluster", "--scan-interval=600"} <= set(server["args"])
    assert any(e["name"] == "POD_NAME" for e in server["env"])
