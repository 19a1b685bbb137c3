"""An ApiClient for one cluster: from a kubeconfig file and context, or the pod's service account.

`connect(kubeconfig, context)` reads the file (default: $KUBECONFIG, else ~/.kube/config) the way
kubectl does; `in_cluster()` uses the token and CA mounted into a pod. A file or context that cannot be
used is a `ClusterConfigError` that names it, never a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

DEFAULT_KUBECONFIG = Path("~/.kube/config")


class ClusterConfigError(Exception):
    """A kubeconfig, context or in-cluster configuration that cannot be used (the message says why)."""


@dataclass(frozen=True)
class Connection:
    """An ApiClient and where it points (for messages and logs)."""

    api: client.ApiClient
    context: str
    server: str


def kubeconfig_path(kubeconfig: Path | None) -> Path:
    if kubeconfig is not None:
        return kubeconfig
    env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(env) if env else DEFAULT_KUBECONFIG.expanduser()


def contexts(kubeconfig: Path | None) -> tuple[list[str], str | None]:
    """The context names of the kubeconfig and its current context."""
    path = kubeconfig_path(kubeconfig)
    if not path.is_file():
        raise ClusterConfigError(f"kubeconfig {path}: no such file (pass --kubeconfig or set KUBECONFIG)")
    try:
        found, current = config.list_kube_config_contexts(config_file=str(path))
    except (ConfigException, OSError, ValueError, TypeError, AttributeError) as exc:
        raise ClusterConfigError(f"kubeconfig {path}: {exc}") from None
    return [str(c["name"]) for c in found or []], (str(current["name"]) if current else None)


def connect(kubeconfig: Path | None = None, context: str | None = None) -> Connection:
    """An ApiClient for `context` of the kubeconfig (default: its current context)."""
    path = kubeconfig_path(kubeconfig)
    names, current = contexts(path)
    chosen = context or current
    if chosen is None:
        raise ClusterConfigError(f"kubeconfig {path} has no current context: pass --context (one of {names})")
    if chosen not in names:
        raise ClusterConfigError(f"kubeconfig {path} has no context {chosen!r} (it has: {', '.join(names) or 'none'})")
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=str(path), context=chosen, client_configuration=configuration)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise ClusterConfigError(f"kubeconfig {path}, context {chosen}: {exc}") from None
    return Connection(client.ApiClient(configuration), chosen, str(configuration.host))


def in_cluster_config() -> client.Configuration:
    """The configuration of the pod's service account (token and CA under /var/run/secrets)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException as exc:
        raise ClusterConfigError(f"in-cluster configuration: {exc} (is the service account token mounted?)") from None
    return configuration


def in_cluster() -> Connection:
    """An ApiClient from the pod's service account."""
    configuration = in_cluster_config()
    return Connection(client.ApiClient(configuration), "in-cluster", str(configuration.host))
