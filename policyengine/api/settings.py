"""Server settings: one pydantic model, passed to worker processes as JSON in an environment variable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from policyengine.admission.review import DEFAULT_MAX_BODY_BYTES
from policyengine.audit.sinks import DEFAULT_TIMEOUT_S
from policyengine.resources import default_policies

SETTINGS_ENV = "POLICYENGINE_SERVE_SETTINGS"


class Settings(BaseModel):
    """Everything `create_app` and `policyengine serve` need to run one cluster's webhook server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster: str = Field(min_length=1, description="the cluster this server admits objects for")
    policies: Path = Field(default_factory=default_policies)
    audit_url: str = "sqlite:///./var/audit.db"
    audit_spool_dir: Path | None = None
    # Connect and statement bound of the audit database: past it the database counts as down and rows
    # are spooled, so it stays below the webhook deadlines.
    audit_timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)
    audit_signing_key: Path | None = Field(default=None, description="Ed25519 key (PEM) signing chain heads")
    audit_sign_every_rows: int = Field(default=10_000, ge=1, description="a checkpoint every N rows...")
    audit_sign_every_seconds: float = Field(default=60.0, gt=0, description="...and every T seconds")
    engine: Literal["regorus", "opa"] = "regorus"
    opa_url: str | None = None
    opa_token: str | None = None
    admin_token: str | None = Field(default=None, repr=False)
    admin_client_ca: Path | None = Field(default=None, description="client certificates for the admin API")
    # Who may call what (see policyengine/api/access.py): the API server's client certificate for the
    # webhooks; a bearer token or a client certificate for /v1/decide, /v1/authz, /openapi.json, /metrics.
    client_ca: Path | None = Field(default=None, description="CA of the API server's client certificate")
    client_cn: str | None = Field(default=None, min_length=1, description="its required common name")
    api_client_ca: Path | None = Field(default=None, description="CA of callers of /v1/decide and /v1/authz")
    api_tokens: tuple[str, ...] = Field(default=(), repr=False, description="bearer tokens of those callers")
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="plain-HTTP port of /metrics")
    metrics_on_https: bool = Field(default=True, description="also serve /metrics on the HTTPS port")

    host: str = "127.0.0.1"
    port: int = 8443
    workers: int = Field(default=1, ge=1)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    cert_check_seconds: float = Field(default=5.0, gt=0)
    log_level: str = "info"

    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    # Slow and oversized clients (policyengine/api/protocol.py): the request head must arrive within
    # header_timeout_seconds and the body within body_timeout_seconds; a head is at most max_header_bytes
    # and max_headers headers.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    max_headers: int = Field(default=128, ge=8)
    # Internal deadlines, below the webhook timeouts (mutating 2 s, validating 3 s in deploy/).
    mutate_deadline_seconds: float = Field(default=1.2, gt=0)
    validate_deadline_seconds: float = Field(default=2.0, gt=0)
    # What to answer when the deadline passes or the policy is not loaded (the failurePolicy of deploy/).
    mutate_failure: Literal["allow", "deny"] = "allow"
    validate_failure: Literal["allow", "deny"] = "deny"
    eval_threads: int = Field(
        default=0, ge=0, description="threads that run Rego off the event loop; 0: inline"
    )

    own_namespace: str = "policyengine-system"
    own_service_account: str = "policyengine"
    policy_check_seconds: float = Field(default=2.0, gt=0, description="how often to look for policy changes")
    # The policy from a bundle service instead of `policies` (api/bundle_source.py).
    policy_bundle_url: str | None = Field(default=None, pattern=r"^https://\S+$", description="HTTPS only")
    policy_bundle_ca: Path | None = None
    policy_bundle_token: str | None = Field(default=None, repr=False)
    policy_bundle_poll_seconds: float = Field(default=30.0, gt=0)
    runtime_dir: Path | None = Field(default=None, description="shared by workers: reload requests")
    echo_endpoint: bool = Field(default=False, description="serve /echo, the benchmark's floor")
    stock_http: bool = Field(
        default=False, description="uvicorn's own protocol, without the limits: the benchmark's baseline only"
    )
    tune_gc: bool = Field(default=True, description="freeze the heap after each policy load; rarer young GC")
    audit_page_policies: tuple[Path, ...] = Field(
        default=(), description="`audit serve`: the policy repos whose revisions the page explains"
    )
    authz_source_header: str = Field(
        default="x-policyengine-source",
        min_length=1,
        pattern=r"^[A-Za-z0-9-]+$",
        description="request header carrying the caller's identity for /v1/authz (else the XFCC URI)",
    )

    # The live cluster (policyengine/api/live.py): a kubeconfig (and context) or the pod's service account.
    kubeconfig: Path | None = Field(default=None, description="kubeconfig of the cluster to watch")
    kube_context: str | None = Field(default=None, min_length=1, description="its context (default: current)")
    in_cluster: bool = Field(default=False, description="watch the cluster the pod runs in")
    watch_seconds: int = Field(default=300, ge=1, description="length of one watch request")
    # The background scan (policyengine/k8s/scan.py); 0: no scan.
    scan_interval_seconds: float = Field(default=0.0, ge=0)
    report_api: Literal["wgpolicyk8s.io/v1alpha2", "openreports.io/v1alpha1"] = "wgpolicyk8s.io/v1alpha2"
    report_cap_bytes: int = Field(default=1_000_000, ge=10_000, description="largest report written")
    lease_namespace: str | None = Field(default=None, description="namespace of the scan Lease (default own)")
    lease_seconds: float = Field(default=30.0, gt=0, description="scan Lease duration")

    @property
    def watches_cluster(self) -> bool:
        return self.in_cluster or self.kubeconfig is not None or self.kube_context is not None

    @property
    def own_username(self) -> str:
        return f"system:serviceaccount:{self.own_namespace}:{self.own_service_account}"

    def to_environment(self) -> dict[str, str]:
        return {SETTINGS_ENV: self.model_dump_json()}

    @classmethod
    def from_environment(cls) -> Settings:
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise RuntimeError(f"{SETTINGS_ENV} is not set: start the server with `policyengine serve`")
        return cls.model_validate_json(raw)
