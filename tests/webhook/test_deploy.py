"""deploy/: every overlay renders with `kubectl kustomize`, built-in kinds validate against the
Kubernetes 1.32 schemas (kubernetes-validate, strict), and the webhook configurations, Deployment and
certificates are checked field by field against the issue's requirements."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from policyengine.admission.extract import REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OWN = [p for p in ("base", "overlays/postgres")]
OTHERS = sorted(str(p.relative_to(DEPLOY)) for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
K8S_VERSION = "1.32"
CRD_GROUPS = ("cert-manager.io", "monitoring.coreos.com")
SA = "system:serviceaccount:policyengine-system:policyengine"


def _plural(kind: str) -> str:
    return kind.lower()[:-1] + "ies" if kind.endswith("y") else kind.lower() + "s"


# Every kind an extractor reads (policyengine.admission.extract.REGISTRY), as webhook rule resources.
ROUTING_RULES = {(group, _plural(kind)) for group, kind in REGISTRY}


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed: the deploy/ checks need `kubectl kustomize` (kubectl 1.32)")
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY / overlay)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in found])
    return found[0]


def rules_of(webhook: dict[str, Any]) -> set[tuple[str, str]]:
    return {(g, r) for rule in webhook["rules"] for g in rule["apiGroups"] for r in rule["resources"]}


@pytest.mark.parametrize("overlay", sorted(set(OWN) | set(OTHERS)))
def test_overlay_renders_and_builtin_kinds_validate(overlay: str) -> None:
    objects = render(overlay)
    assert objects
    for obj in objects:
        if obj["apiVersion"].split("/")[0] in CRD_GROUPS:
            continue  # custom resources: checked field by field below
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OWN)
def test_webhook_configurations_field_by_field(overlay: str) -> None:
    objects = render(overlay)
    mutating = one(objects, "MutatingWebhookConfiguration")
    validating = one(objects, "ValidatingWebhookConfiguration")
    for config in (mutating, validating):
        assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
            "policyengine-system/policyengine-tls"
        )
        (hook,) = config["webhooks"]
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "NoneOnDryRun"
        assert hook["matchPolicy"] == "Equivalent"
        service = hook["clientConfig"]["service"]
        assert (service["namespace"], service["name"], service["port"]) == (
            "policyengine-system",
            "policyengine",
            443,
        )
        (selector,) = hook["namespaceSelector"]["matchExpressions"]
        assert selector["key"] == "kubernetes.io/metadata.name" and selector["operator"] == "NotIn"
        assert set(selector["values"]) == {"kube-system", "policyengine-system"}
        conditions = {c["name"]: c["expression"] for c in hook["matchConditions"]}
        assert conditions["skip-own-service-account"] == f"request.userInfo.username != '{SA}'"
        assert "objectSelector" not in hook  # an object label must never opt out of the check
        for rule in hook["rules"]:
            assert rule["operations"] == ["CREATE", "UPDATE"] and rule["scope"] == "Namespaced"
    (mutate,) = mutating["webhooks"]
    assert mutate["clientConfig"]["service"]["path"] == "/mutate"
    assert (mutate["failurePolicy"], mutate["timeoutSeconds"], mutate["reinvocationPolicy"]) == (
        "Ignore",
        2,
        "IfNeeded",
    )
    assert rules_of(mutate) == ROUTING_RULES | {("apps", "deployments"), ("apps", "statefulsets")}
    (check,) = validating["webhooks"]
    assert check["clientConfig"]["service"]["path"] == "/validate"
    assert (check["failurePolicy"], check["timeoutSeconds"]) == ("Fail", 3)
    assert rules_of(check) == ROUTING_RULES  # tight: the routing kinds only


@pytest.mark.parametrize("overlay", OWN)
def test_deployment_is_highly_available_and_locked_down(overlay: str) -> None:
    objects = render(overlay)
    deployment = one(objects, "Deployment", "policyengine")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 3
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    (server,) = pod["containers"]
    assert server["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert server["resources"]["requests"] and server["resources"]["limits"]["memory"]
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
    assert {"--tls-cert=/etc/policyengine/tls/tls.crt", "--policies=/etc/policyengine/policies"} <= set(
        server["args"]
    )
    assert {"--tls-min-version=1.3", "--metrics-port=9090", "--no-metrics-on-https"} <= set(server["args"])
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in server["ports"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9090"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "policyengine-tls"
    assert "policy-repo" in volumes
    pdb = one(objects, "PodDisruptionBudget", "policyengine")
    assert pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    service = one(objects, "Service", "policyengine")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    role = one(objects, "Role", "policyengine")
    configmaps = [r for r in role["rules"] if r["resources"] == ["configmaps"]]
    assert configmaps == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["policyengine-policies"],
                           "verbs": ["get", "list", "watch"]}]  # fmt: skip
    # The cluster-wide read and the report writes are checked against the kind table: tests/k8s/test_rbac.py.
    serving = one(objects, "Certificate", "policyengine-tls")
    assert "policyengine.policyengine-system.svc" in serving["spec"]["dnsNames"]
    assert serving["spec"]["secretName"] == "policyengine-tls"


def test_apiserver_client_auth_overlay_requires_the_api_servers_certificate() -> None:
    objects = render("overlays/apiserver-client-auth")
    pod = one(objects, "Deployment", "policyengine")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert "--client-ca=/etc/policyengine/apiserver-client-ca/ca.crt" in server["args"]
    assert "--client-cn=kube-apiserver" in server["args"]
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    assert mounts["apiserver-client-ca"] == "/etc/policyengine/apiserver-client-ca"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["apiserver-client-ca"]["configMap"]["name"] == "policyengine-apiserver-client-ca"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"  # probes need no certificate


def test_postgres_overlay_takes_the_audit_url_from_a_secret() -> None:
    objects = render("overlays/postgres")
    secret = one(objects, "Secret")
    pod = one(objects, "Deployment", "policyengine")["spec"]["template"]["spec"]
    for container in pod["containers"] + [c for c in pod["initContainers"] if c["name"] == "db-upgrade"]:
        env = {e["name"]: e for e in container["env"]}
        ref = env["POLICYENGINE_AUDIT_URL"]["valueFrom"]
        assert ref == {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "url"}}


@pytest.mark.parametrize(
    ("overlay", "kind"),
    [("base", "emptyDir"), ("overlays/spool-pvc", "persistentVolumeClaim"), ("overlays/spool-hostpath", "hostPath")],
)
def test_the_audit_spool_has_a_volume_of_its_own(overlay: str, kind: str) -> None:
    """The spool is mounted from a volume of its own where --spool-dir points; the overlays make it
    outlive the pod (a claim shared by the replicas, or a node directory)."""
    objects = render(overlay)
    pod = one(objects, "Deployment", "policyengine")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    assert "--spool-dir=/var/lib/policyengine/spool" in server["args"]
    assert mounts["audit-spool"] == "/var/lib/policyengine/spool"
    (volume,) = [v for v in pod["volumes"] if v["name"] == "audit-spool"]
    assert set(volume) == {"name", kind}, volume
    if kind == "persistentVolumeClaim":
        claim = one(objects, "PersistentVolumeClaim", volume[kind]["claimName"])
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
