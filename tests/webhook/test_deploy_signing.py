"""deploy/: the server signs its chain heads with the key of a Secret mounted read-only as a file, in
every overlay; no key is rendered from the repo (it is made with `policyengine audit keygen`)."""

from __future__ import annotations

import pytest

from webhook.test_deploy import OTHERS, OWN, one, render

KEY_FILE = "/etc/policyengine/audit-signing-key/audit.key"


@pytest.mark.parametrize("overlay", sorted(set(OWN) | set(OTHERS)))
def test_the_signing_key_comes_from_a_secret_file(overlay: str) -> None:
    objects = render(overlay)
    pod = one(objects, "Deployment", "policyengine")["spec"]["template"]["spec"]
    (server,) = [c for c in pod["containers"] if c["name"] == "policyengine"]
    assert f"--audit-signing-key={KEY_FILE}" in server["args"]
    mounts = {m["name"]: m for m in server["volumeMounts"]}
    assert mounts["audit-signing-key"] == {
        "name": "audit-signing-key",
        "mountPath": "/etc/policyengine/audit-signing-key",
        "readOnly": True,
    }
    volume = {v["name"]: v for v in pod["volumes"]}["audit-signing-key"]["secret"]
    assert volume["secretName"] == "policyengine-audit-signing-key"
    assert volume["items"] == [{"key": "audit.key", "path": "audit.key"}] and volume["defaultMode"] == 0o440
    for container in pod["initContainers"] + [c for c in pod["containers"] if c is not server]:
        assert "audit-signing-key" not in {m["name"] for m in container.get("volumeMounts", [])}
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    assert "policyengine-audit-signing-key" not in names  # never a key in the repo
