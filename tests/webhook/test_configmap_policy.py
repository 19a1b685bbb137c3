"""The policy repo from a ConfigMap: deploy/ renders it (configMapGenerator, fixed name, mounted whole),
and a running server reloads it when the kubelet swaps the mounted files (`..data`), serving the new
revision in its decisions; a broken update keeps the old policy serving and says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policyengine.api.settings import Settings
from policyengine.api.state import AppState, Snapshot
from policyengine.policy import load_policy
from policyengine.resources import default_policies

from .harness import REPO, start_server, wait_for
from .kubelet import ConfigMapVolume, data_of
from .test_deploy import OTHERS, OWN, one, render

POLICY_MOUNT = "/etc/policyengine/policies"


def test_every_overlay_feeds_the_policy_from_the_generated_configmap(tmp_path: Path) -> None:
    shipped = data_of(REPO / "deploy" / "base" / "policies")
    assert shipped == data_of(default_policies()), (
        "deploy/base/policies drifted from policyengine/policies: cp policyengine/policies/*.yaml "
        "deploy/base/policies/ (and list any new file in deploy/base/kustomization.yaml)"
    )
    for overlay in sorted(set(OWN) | set(OTHERS)):
        objects = render(overlay)
        config_map = one(objects, "ConfigMap", "policyengine-policies")  # no hash suffix
        assert config_map["data"] == shipped, overlay
        pod = one(objects, "Deployment", "policyengine")["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (server,) = [c for c in pod["containers"] if c["name"] == "policyengine"]
        (mount,) = [m for m in server["volumeMounts"] if m["mountPath"] == POLICY_MOUNT]
        assert "subPath" not in mount and mount["readOnly"] is True  # a subPath mount never updates
        assert volumes[mount["name"]]["configMap"]["name"] == "policyengine-policies"
        assert f"--policies={POLICY_MOUNT}" in server["args"]
        role = one(objects, "Role", "policyengine")
        assert any("policyengine-policies" in rule.get("resourceNames", []) for rule in role["rules"])
    # What the pods mount loads, with the revision of the bundled default.
    volume = ConfigMapVolume(tmp_path / "policies", shipped)
    assert load_policy(volume.root).revision == load_policy(default_policies()).revision


def test_a_kubelet_swap_of_the_mounted_policy_reaches_the_decisions(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "mount" / "policies", data_of(default_policies()))
    server = start_server(tmp_path, "--policy-check-seconds", "0.3", policies=volume.root)
    try:
        first = server.decide()
        assert first["outcome"] in ("deny", "rewrite")  # the SCC of shop/checkout to us-1 has expired
        # The DPO renews the SCC; the ConfigMap is applied and the kubelet swaps the files.
        renewed = {**data_of(default_policies())}
        renewed["transfers.yaml"] = renewed["transfers.yaml"].replace("expires: 2026-09-30", "expires: 2030-09-30")
        assert renewed["transfers.yaml"] != data_of(default_policies())["transfers.yaml"]
        volume.update(renewed)
        assert wait_for(lambda: server.decide()["policy_revision"] != first["policy_revision"])
        second = server.decide()
        assert second["outcome"] == "allow", second
        assert second["policy_revision"] == load_policy(volume.root).revision

        # A broken update: the servers keep the renewed policy and say why.
        broken = {**renewed, "clusters.yaml": "clusters: [ {name: eu-1, region: nowhere/none} ]\n"}
        volume.update(broken)
        assert wait_for(lambda: bool(server.client.get("/readyz").json()["checks"]["policy"]["last_reload_error"]))
        ready = server.client.get("/readyz").json()["checks"]["policy"]
        assert "clusters.yaml" in ready["last_reload_error"] and ready["revision"] == second["policy_revision"]
        assert server.decide()["policy_revision"] == second["policy_revision"]
        # Fixed again: back to the shipped policy.
        volume.update(data_of(default_policies()))
        assert wait_for(lambda: server.decide()["policy_revision"] == first["policy_revision"])
    finally:
        server.stop()
    log = server.log.read_text()
    assert f"policy reload failed, still serving {second['policy_revision']}" in log, log


def test_files_swapped_while_they_are_read_are_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume = ConfigMapVolume(tmp_path / "policies", data_of(default_policies()))
    state = AppState(Settings(cluster="eu-1", policies=volume.root))
    renewed = data_of(default_policies())
    renewed["transfers.yaml"] = renewed["transfers.yaml"].replace("expires: 2026-09-30", "expires: 2030-09-30")
    real = state.build_snapshot
    calls: list[int] = []

    def swapped_during_the_read(*args: Any) -> Snapshot:
        snapshot = real(*args)
        if not calls:
            volume.update(renewed)  # the kubelet's swap lands after the files were read
        calls.append(1)
        return snapshot

    monkeypatch.setattr(state, "build_snapshot", swapped_during_the_read)
    served: list[str] = []
    state.add_reload_listener(lambda snapshot: served.append(snapshot.revision))
    outcome = state.reload()
    assert len(calls) == 2 and outcome.ok
    assert served == [load_policy(volume.root).revision]  # the read the swap overtook was never served
