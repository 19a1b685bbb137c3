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
    authz_source_header: Annotated[
        str,
        typer.Option(
            help="Header with the caller's identity (SPIFFE ID or NAMESPACE/NAME) for /v1/authz; "
            "without it the URI of x-forwarded-client-cert is used."
        ),
    ] = "x-policyengine-source",
) -> None:
    """Serve the admission webhook (/mutate, /validate), the routing filter, /healthz, /readyz, /metrics."""
    from pydantic import ValidationError

    from policyengine.api.server import run
    from policyengine.api.settings import Settings
    from policyengine.api.state import describe_load_error
    from policyengine.api.tls import check_pair, make_dev_certificates
    from policyengine.audit import AuditStoreError
    from policyengine.audit.store import check_audit_store
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
            authz_source_header=authz_source_header.lower(),
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
    # A bad URL or an unmigrated database stops here; a database that does not answer does not: the
    # server starts and spools until it does (and ships what earlier processes left in --spool-dir).
    try:
        check_audit_store(db)
    except AuditStoreError as exc:
        raise _fail(f"audit store {db}: {exc}") from None
    typer.echo(
        f"policyengine serving cluster {cluster} on https://{host}:{port} "
        f"(policy {revision[:19]}, engine {engine}, audit {db}, {workers} worker(s))"
    )
    run(settings)


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
