"""Rendering a kustomization directory with `kubectl kustomize`, as `kubectl apply -k` would.

A directory holding a `kustomization.yaml` (or `.yml`, or `Kustomization`) is not a set of objects but
a recipe: its `namespace:`, patches and generators change what gets applied. `render(directory)`
returns the rendered YAML, or a `KustomizeError` that says what failed and how to render it by hand
(`kubectl kustomize DIR | policyengine check - ...`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
TIMEOUT_SECONDS = 120


class KustomizeError(Exception):
    """A kustomization that could not be rendered: the message says why and what to do."""


def kustomization_file(directory: Path) -> Path | None:
    """The kustomization file of `directory`, None when it has none."""
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def render(directory: Path) -> str:
    """The objects `kubectl kustomize directory` renders, as one YAML stream."""
    pipe = f"kubectl kustomize {directory} | policyengine check - --cluster ..."
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise KustomizeError(
            f"is a kustomization and kubectl is not on PATH: install kubectl, or render it yourself: {pipe}"
        )
    try:
        done = subprocess.run(
            [kubectl, "kustomize", str(directory)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise KustomizeError(
            f"kubectl kustomize took longer than {TIMEOUT_SECONDS} s (render it yourself: {pipe})"
        ) from None
    except OSError as exc:
        raise KustomizeError(f"cannot run kubectl: {exc} (render it yourself: {pipe})") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise KustomizeError(
            f"kubectl kustomize failed: {reason} (fix the kustomization, or render it yourself: {pipe})"
        )
    return done.stdout
