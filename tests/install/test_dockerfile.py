"""deploy/Dockerfile installs policyengine exactly as tests/install does, and fits the Deployment.

There is no Docker engine on this machine (nor in CI), so the image itself cannot be built or run
here. Instead: the Dockerfile's build stage copies the files and runs the script (deploy/build-venv.sh)
that test_installed_wheel.py copies and runs, so the tested install is the image's; and the final stage
is checked against deploy/base's rendered Deployment: only the virtualenv is copied in (no source
tree), the user and group are the pod's runAsUser/runAsGroup, the entrypoint is the `policyengine`
command the containers' args are given to, and with a read-only root filesystem every path the server
writes to is a mounted volume.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from webhook.test_deploy import one, render

from .installed import REPO, build_stage_sources, dockerfile_stages

WRITABLE_ARGS = ("--spool-dir", "--runtime-dir", "--dev-certs-dir")


def env_of(steps: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in steps:
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def test_build_stage_builds_the_wheel_with_the_tested_script() -> None:
    build, final = dockerfile_stages()
    assert build.name == "build" and build.base == final.base == "python:3.11-slim"
    assert build_stage_sources() == ["pyproject.toml", "README.md", "policyengine", "deploy/build-venv.sh"]
    (workdir,) = build.all("WORKDIR")
    (run,) = build.all("RUN")
    assert shlex.split(run) == ["sh", "deploy/build-venv.sh", workdir, "/venv"]
    for source in build_stage_sources():
        assert (REPO / source).exists(), source


def test_final_stage_holds_the_virtualenv_only() -> None:
    _, final = dockerfile_stages()
    assert final.all("COPY") == ["--from=build /venv /venv"]  # no source tree, no wheel file
    env = env_of(final.all("ENV"))
    assert env["PATH"].split(":")[0] == "/venv/bin"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # nothing is written beside the modules
    assert json.loads(final.all("ENTRYPOINT")[0]) == ["policyengine"]
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {"**/__pycache__", ".venv", "var"} <= set(ignored)


def _pod() -> dict[str, Any]:
    deployment = one(render("base"), "Deployment", "policyengine")
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_user_and_read_only_root_filesystem_match_the_deployment() -> None:
    _, final = dockerfile_stages()
    (user,) = final.all("USER")
    uid, gid = (int(x) for x in user.split(":"))
    pod = _pod()
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = env_of(final.all("ENV"))
    (workdir,) = final.all("WORKDIR")
    for container in pod["containers"] + pod.get("initContainers", []):
        if not container["image"].startswith("policyengine:"):
            continue
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        writable = {Path(p) for p, m in mounts.items() if not m.get("readOnly")}
        # The image's HOME and working directory (relative paths, caches) and the temp dir are volumes.
        for path in (env["HOME"], workdir, "/tmp"):
            assert Path(path) in writable, (container["name"], path)
        for arg in container.get("args", []):
            flag, _, value = arg.partition("=")
            if flag in WRITABLE_ARGS:
                assert any(Path(value).is_relative_to(w) for w in writable), (container["name"], arg)


def test_entrypoint_takes_the_containers_args() -> None:
    pod = _pod()
    commands = {"serve", "db", "policy", "check", "test", "bundle"}
    for container in pod["containers"] + pod.get("initContainers", []):
        if not container["image"].startswith("policyengine:"):
            continue
        assert "command" not in container, container["name"]  # the image's ENTRYPOINT runs
        assert container["args"][0] in commands, container["args"]
    version = next(
        line.split('"')[1] for line in (REPO / "pyproject.toml").read_text().splitlines() if line.startswith("version")
    )
    (server,) = [c for c in pod["containers"] if c["name"] == "policyengine"]
    assert server["image"] == f"policyengine:{version}"
