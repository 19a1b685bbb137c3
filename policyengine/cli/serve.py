"""`policyengine serve`: the HTTPS server (admission webhook, routing filter, health, metrics, admin)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from policyengine.api.state import AppState

DEFAULT_DEV_CERTS = Path("var/tls")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg="red")
    return typer.Exit(2)


def serve(
    cluster: Annotated[
        str, typer.Option(help="The cluster this server admits objects for (in clusters.yaml).")
    ],
    policies: Annotated[
        Path | None, typer.Option(help="The policy repo directory (default: the bundled one).", show_default=False)
    ] = None,
    policy_bundle_url: Annotated[
        str | None,
        typer.Option(
            help="Serve the policy from this HTTPS bundle service URL instead (a bundle from "
            "`policyengine bundle build`), polled with ETags.",
            show_default=False,
        ),
    ] = None,
    policy_bundle_ca: Annotated[
        Path | None, typer.Option(help="CA bundle (PEM) that signs the bundle service's certificate.")
    ] = None,
    policy_bundle_token_file: Annotated[
        Path | None, typer.Option(help="File holding a bearer token for the bundle service.")
    ] = None,
    policy_bundle_poll_seconds: Annotated[
        float, typer.Option(help="How often to poll the bundle URL (If-None-Match; 304 costs nothing).")
    ] = 30.0,
    db: Annotated[
        str,
        typer.Option(
            envvar=["POLICYENGINE_AUDIT_DB", "POLICYENGINE_AUDIT_URL"],
            help="Audit database URL (run `db upgrade` first).",
        ),
    ] = "sqlite:///./var/audit.db",
    spool_dir: Annotated[
        Path | None, typer.Option(help="Where audit rows wait while the DB is down.")
    ] = None,
    audit_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Seconds an audit database connect or statement may take before rows are spooled instead "
            "(keep it below the webhook deadlines).",
        ),
    ] = 1.0,
    audit_signing_key: Annotated[
        Path | None,
        typer.Option(
            envvar="POLICYENGINE_AUDIT_SIGNING_KEY",
            help="Ed25519 private key (PEM, `policyengine audit keygen`) that signs the chain heads.",
        ),
    ] = None,
    audit_sign_every_rows: Annotated[int, typer.Option(min=1, help="Sign the chain head every N rows...")] = 10_000,
    audit_sign_every_seconds: Annotated[
        float, typer.Option(min=0.1, help="...and every T seconds (when rows were added), and at stop.")
    ] = 60.0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTPS port.")] = 8443,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Server certificate (PEM); reloaded on change.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Its private key (PEM).")] = None,
    dev_certs: Annotated[
        bool,
        typer.Option("--dev-certs", help="Make a local CA and a certificate for localhost and the service."),
    ] = False,
    dev_certs_dir: Annotated[
        Path, typer.Option(help="Where --dev-certs writes ca.crt, tls.crt, tls.key.")
    ] = (DEFAULT_DEV_CERTS),
    engine: Annotated[str, typer.Option(help="Rego engine: regorus (embedded) or opa (server).")] = "regorus",
    opa_url: Annotated[str | None, typer.Option(help="OPA server URL for --engine opa.")] = None,
    opa_token: Annotated[
        str | None, typer.Option(envvar="POLICYENGINE_OPA_TOKEN", help="Bearer token for the OPA server.")
    ] = None,
    admin_token_file: Annotated[
        Path | None, typer.Option(help="File holding the bearer token of POST /v1/admin/reload.")
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Largest AdmissionReview accepted.")] = 3 * 1024 * 1024,
    namespace: Annotated[str, typer.Option(help="The server's own namespace (never reviewed).")] = (
        "policyengine-system"
    ),
    service_account: Annotated[str, typer.Option(help="Its own service account (never reviewed).")] = (
        "policyengine"
    ),
    validate_failure: Annotated[
        str, typer.Option(help="Answer of /validate past its deadline: deny or allow.")
    ] = "deny",
    mutate_deadline: Annotated[
        float, typer.Option(help="Seconds /mutate may take (webhook timeout 2 s).")
    ] = 1.2,
    validate_deadline: Annotated[float, typer.Option(help="Seconds /validate may take (timeout 3 s).")] = 2.0,
    cert_check_seconds: Annotated[float, typer.Option(help="How often to look for rotated TLS files.")] = 5.0,
    policy_check_seconds: Annotated[float, typer.Option(help="How often to look for policy changes.")] = 2.0,
    runtime_dir: Annotated[
        Path | None, typer.Option(help="Scratch dir shared by workers (default: temp).")
    ] = None,
    eval_threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="Threads that evaluate Rego off the event loop (0: on the loop; a decision is ~0.1 ms).",
        ),
    ] = 0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    echo_endpoint: Annotated[bool, typer.Option("--echo-endpoint", hidden=True)] = False,
    stock_http: Annotated[bool, typer.Option("--stock-http", hidden=True)] = False,
    authz_source_header: Annotated[
        str,
        typer.Option(
            help="Header with the caller's identity (SPIFFE ID or NAMESPACE/NAME) for /v1/authz; "
            "without it the URI of x-forwarded-client-cert is used."
        ),
    ] = "x-policyengine-source",
    client_ca: Annotated[
        Path | None,
        typer.Option(help="CA of the API server's client certificate: /mutate and /validate require one."),
    ] = None,
    client_cn: Annotated[
        str | None,
        typer.Option(help="With --client-ca: the common name that certificate must have (e.g. kube-apiserver)."),
    ] = None,
    api_client_ca: Annotated[
        Path | None,
        typer.Option(help="CA of client certificates accepted on /v1/decide, /v1/authz, /openapi.json, /metrics."),
    ] = None,
    api_token_file: Annotated[
        Path | None,
        typer.Option(help="Bearer tokens (one a line) accepted on /v1/decide, /v1/authz, /openapi.json, /metrics."),
    ] = None,
    admin_client_ca: Annotated[
        Path | None, typer.Option(help="CA of client certificates accepted on the admin API.")
    ] = None,
    tls_min_version: Annotated[
        str, typer.Option(help="Lowest TLS version: 1.2 (AEAD suites only) or 1.3.")
    ] = "1.2",
    metrics_port: Annotated[
        int | None, typer.Option(help="Also serve /metrics over plain HTTP on this port (pod network only).")
    ] = None,
    metrics_on_https: Annotated[
        bool, typer.Option(help="Serve /metrics on the HTTPS port too (--no-metrics-on-https: only the plain port).")
    ] = True,
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a client may take to send a request's head.")
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a client may take to send a body (webhooks: their deadline).")
    ] = 10.0,
    max_header_bytes: Annotated[int, typer.Option(help="Largest request head (line and headers).")] = 64 * 1024,
    max_headers: Annotated[int, typer.Option(help="Most headers in a request.")] = 128,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="Watch the cluster of this kubeconfig (the inventory: namespace labels, placement)."),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="The kubeconfig context to use (default: its current one).")
    ] = None,
    in_cluster: Annotated[
        bool, typer.Option("--in-cluster", help="Watch the cluster the pod runs in (its service account).")
    ] = False,
    watch_seconds: Annotated[int, typer.Option(min=1, hidden=True)] = 300,
    scan_interval: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between background scans of every crossing kind (one replica, by Lease; 0: none). "
            "Needs --kubeconfig or --in-cluster.",
        ),
    ] = 0.0,
    report_api: Annotated[
        str,
        typer.Option(
            help="Reports the scan writes: wgpolicyk8s.io/v1alpha2 (PolicyReport) or openreports.io/v1alpha1."
        ),
    ] = "wgpolicyk8s.io/v1alpha2",
    report_cap_bytes: Annotated[
        int, typer.Option(min=10_000, help="Largest report the scan writes (results past it are cut, and counted).")
    ] = 1_000_000,
    lease_namespace: Annotated[
        str | None, typer.Option(help="Namespace of the scan's Lease (default: --namespace).", show_default=False)
    ] = None,
    lease_seconds: Annotated[float, typer.Option(min=1, help="Duration of the scan's Lease.")] = 30.0,
) -> None:
    """Serve the admission webhook (/mutate, /validate), the routing filter, /healthz, /readyz, /metrics."""
    from pydantic import ValidationError

    from policyengine.api.access import load_ca_file, load_token_file
    from policyengine.api.server import run
    from policyengine.api.settings import Settings
    from policyengine.api.state import describe_load_error
    from policyengine.api.tls import check_pair, make_dev_certificates
    from policyengine.audit import AuditStoreError
    from policyengine.audit.signing import SigningKey, SigningKeyError
    from policyengine.audit.store import check_audit_store, display_url
    from policyengine.resources import default_policies

    if dev_certs:
        certs = make_dev_certificates(dev_certs_dir)
        tls_cert, tls_key = certs.cert, certs.key
        typer.echo(f"development certificates in {dev_certs_dir} (trust {certs.ca_cert}, e.g. curl --cacert)")
    if tls_cert is None or tls_key is None:
        raise _fail("HTTPS only: pass --tls-cert and --tls-key, or --dev-certs for local use")
    problem = check_pair(tls_cert, tls_key)
    if problem:
        raise _fail(problem)
    admin_token = os.environ.get("POLICYENGINE_ADMIN_TOKEN")
    if admin_token_file is not None:
        try:
            admin_token = admin_token_file.read_text().strip()
        except OSError as exc:
            raise _fail(f"--admin-token-file {admin_token_file}: {exc.strerror}") from None
        if not admin_token:
            raise _fail(f"--admin-token-file {admin_token_file} is empty: put a long random token in it")
    ca_files = {"--client-ca": client_ca, "--api-client-ca": api_client_ca, "--admin-client-ca": admin_client_ca}
    for flag, path in ca_files.items():
        if path is not None:
            try:
                load_ca_file(path)
            except ValueError as exc:
                raise _fail(f"{flag} {exc}") from None
    if tls_min_version not in ("1.2", "1.3"):
        raise _fail(f"--tls-min-version {tls_min_version}: use 1.2 (AEAD suites only) or 1.3")
    if client_cn is not None and client_ca is None:
        raise _fail("--client-cn needs --client-ca (the CA that issued the API server's client certificate)")
    _check_cluster_access(kubeconfig, context, in_cluster, scan_interval, report_api)
    api_tokens: tuple[str, ...] = ()
    if api_token_file is not None:
        try:
            api_tokens = load_token_file(api_token_file)
        except ValueError as exc:
            raise _fail(f"--api-token-file {exc}") from None
    bundle_token = None
    if policy_bundle_url is not None:
        if policies is not None:
            raise _fail("--policies and --policy-bundle-url are exclusive: serve the repo's files or its bundle")
        if not policy_bundle_url.startswith("https://"):
            raise _fail(f"--policy-bundle-url {policy_bundle_url}: HTTPS only (the bundle decides every request)")
        if policy_bundle_ca is not None and not policy_bundle_ca.is_file():
            raise _fail(f"--policy-bundle-ca {policy_bundle_ca}: no such file")
        if policy_bundle_token_file is not None:
            try:
                bundle_token = policy_bundle_token_file.read_text().strip()
            except OSError as exc:
                raise _fail(f"--policy-bundle-token-file {policy_bundle_token_file}: {exc.strerror}") from None
    try:
        settings = Settings(
            cluster=cluster,
            policies=policies or default_policies(),
            audit_url=db,
            audit_spool_dir=spool_dir,
            audit_timeout_seconds=audit_timeout,
            audit_signing_key=audit_signing_key,
            audit_sign_every_rows=audit_sign_every_rows,
            audit_sign_every_seconds=audit_sign_every_seconds,
            engine=engine,
            opa_url=opa_url,
            opa_token=opa_token,
            admin_token=admin_token,
            host=host,
            port=port,
            workers=workers,
            tls_cert=tls_cert,
            tls_key=tls_key,
            max_body_bytes=max_body_bytes,
            own_namespace=namespace,
            own_service_account=service_account,
            validate_failure=validate_failure,
            mutate_deadline_seconds=mutate_deadline,
            validate_deadline_seconds=validate_deadline,
            cert_check_seconds=cert_check_seconds,
            policy_check_seconds=policy_check_seconds,
            policy_bundle_url=policy_bundle_url,
            policy_bundle_ca=policy_bundle_ca,
            policy_bundle_token=bundle_token,
            policy_bundle_poll_seconds=policy_bundle_poll_seconds,
            runtime_dir=runtime_dir,
            eval_threads=eval_threads,
            log_level=log_level,
            echo_endpoint=echo_endpoint,
            stock_http=stock_http,
            authz_source_header=authz_source_header.lower(),
            client_ca=client_ca,
            client_cn=client_cn,
            api_client_ca=api_client_ca,
            api_tokens=api_tokens,
            admin_client_ca=admin_client_ca,
            tls_min_version=tls_min_version,
            metrics_port=metrics_port,
            metrics_on_https=metrics_on_https,
            header_timeout_seconds=header_timeout,
            body_timeout_seconds=body_timeout,
            max_header_bytes=max_header_bytes,
            max_headers=max_headers,
            kubeconfig=kubeconfig,
            kube_context=context,
            in_cluster=in_cluster,
            watch_seconds=watch_seconds,
            scan_interval_seconds=scan_interval,
            report_api=report_api,
            report_cap_bytes=report_cap_bytes,
            lease_namespace=lease_namespace,
            lease_seconds=lease_seconds,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"--{'-'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    # Fail before any worker starts, with the reason, rather than with a worker's traceback.
    try:
        from policyengine.api.state import AppState

        revision = _first_revision(AppState(settings))
    except Exception as exc:
        raise _fail("the policy repo does not load:\n  " + "\n  ".join(describe_load_error(exc))) from None
    shown_db = display_url(db)  # never the password
    # A bad URL or an unmigrated database stops here; a database that does not answer does not: the
    # server starts and spools until it does (and ships what earlier processes left in --spool-dir).
    try:
        check_audit_store(db)
    except AuditStoreError as exc:
        raise _fail(f"audit store {shown_db}: {exc}") from None
    signing = "unsigned: `audit verify` cannot detect truncation without --audit-signing-key"
    if audit_signing_key is not None:
        try:
            signing = f"heads signed by {SigningKey.load(audit_signing_key).key_id}"
        except SigningKeyError as exc:
            raise _fail(f"--audit-signing-key: {exc}") from None
    metrics_where = f", /metrics on http://{host}:{metrics_port}" if metrics_port is not None else ""
    typer.echo(
        f"policyengine serving cluster {cluster} on https://{host}:{port} "
        f"(policy {revision[:19]}, engine {engine}, audit {shown_db} {signing}, {workers} worker(s)"
        f"{metrics_where})"
    )
    run(settings)


def _check_cluster_access(
    kubeconfig: Path | None, context: str | None, in_cluster: bool, scan_interval: float, report_api: str
) -> None:
    """Exit 2, naming the flag, when the live-cluster options cannot work."""
    if in_cluster and (kubeconfig is not None or context is not None):
        raise _fail("--in-cluster and --kubeconfig/--context are exclusive: watch this pod's cluster or a kubeconfig's")
    if report_api not in ("wgpolicyk8s.io/v1alpha2", "openreports.io/v1alpha1"):
        raise _fail(f"--report-api {report_api}: use wgpolicyk8s.io/v1alpha2 or openreports.io/v1alpha1")
    if scan_interval and not (in_cluster or kubeconfig is not None or context is not None):
        raise _fail("--scan-interval needs a cluster to scan: pass --kubeconfig [--context] or --in-cluster")
    if not (in_cluster or kubeconfig is not None or context is not None):
        return
    from policyengine.k8s.client import ClusterConfigError, contexts, in_cluster_config

    try:
        if in_cluster:
            in_cluster_config()
        else:
            names, current = contexts(kubeconfig)
            chosen = context or current
            if chosen not in names:
                raise ClusterConfigError(
                    f"kubeconfig has no context {chosen!r} (it has: {', '.join(names) or 'none'})"
                    if chosen
                    else "the kubeconfig has no current context: pass --context"
                )
    except ClusterConfigError as exc:
        raise _fail(str(exc)) from None


def _first_revision(state: AppState) -> str:
    """The revision the server will start with; raises what loading it raises.

    From a bundle URL: a bundle that came and does not load fails here; a service that does not answer
    only delays readiness (the workers poll until a bundle loads).
    """
    import shutil
    import tempfile

    from policyengine.api.bundle_source import BundleUnavailable, bundle_source

    if state.settings.policy_bundle_url is None:
        return state.build_snapshot().revision
    scratch = Path(tempfile.mkdtemp(prefix="policyengine-bundle-"))
    source = bundle_source(state.settings, scratch)
    try:
        unpacked = source.fetch()
        if unpacked is None:
            raise BundleUnavailable(f"{source.url} answered 304 Not Modified to a request without an ETag")
        return state.build_snapshot(unpacked.directory, unpacked.revision).revision
    except BundleUnavailable as exc:
        typer.secho(f"warning: {exc}; not ready until a bundle loads", err=True, fg="yellow")
        return "(no bundle yet)"
    finally:
        source.close()
        shutil.rmtree(scratch, ignore_errors=True)


def register(app: typer.Typer) -> None:
    """Add the `serve` command to the main app."""
    app.command("serve")(serve)


if __name__ == "__main__":  # `python -m policyengine.cli.serve --cluster eu-1 ...` (tests, containers)
    typer.run(serve)
