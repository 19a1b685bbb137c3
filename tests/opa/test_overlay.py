"""deploy/overlays/opa-sidecar: the OPA sidecar on localhost, policyengine on --engine opa, both probed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

OVERLAY = Path(__file__).resolve().parents[2] / "deploy" / "overlays" / "opa-sidecar"


def containers() -> dict[str, dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed: rendering the overlay needs `kubectl kustomize`")
    out = subprocess.run([kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (deployment,) = [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "Deployment"]
    assert deployment["metadata"]["namespace"] == "policyengine-system"
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_opa_sidecar_listens_on_localhost_and_policyengine_uses_it() -> None:
    found = containers()
    assert set(found) == {"policyengine", "opa"}
    opa, engine = found["opa"], found["policyengine"]
    assert opa["image"].startswith("openpolicyagent/opa:1.")
    assert "--addr=127.0.0.1:8181" in opa["args"] and "--server" in opa["args"]
    assert engine["args"][0] == "serve"
    assert engine["args"][-2:] == ["--engine=opa", "--opa-url=http://127.0.0.1:8181"]


def test_readiness_depends_on_both_containers() -> None:
    found = containers()
    assert found["opa"]["readinessProbe"]["httpGet"] == {"path": "/health", "port": "opa-diag"}
    assert found["policyengine"]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert found["opa"]["securityContext"]["readOnlyRootFilesystem"] is True
