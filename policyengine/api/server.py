"""Run the app on uvicorn over HTTPS, with one or several worker processes.

Workers are spawned processes that build the app with `app_from_environment`, so the settings travel as
JSON in the environment. With several workers, Prometheus runs in multiprocess mode (a directory of
per-worker sample files under the runtime dir, set before any worker imports prometheus_client) and
admin reloads reach every worker through a file in the same runtime dir. Each worker follows the
certificate files and reloads its TLS chain when they change. policyengine's own log lines go to uvicorn's
handler in uvicorn's format, at the server's log level (`policyengine/api/logs.py`).

The HTTP protocol is uvicorn's httptools one with header and body timeouts and head limits
(`policyengine/api/protocol.py`); TLS is 1.2 with AEAD suites or 1.3 (`policyengine/api/tls.py`); the
access log keeps no query strings (`policyengine/api/logs.py`). With `metrics_port`, /metrics is also
served over plain HTTP on that port, by this (the supervising) process: in multiprocess mode it sums
the workers' sample files, as the HTTPS endpoint does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import uvicorn

from policyengine.api.logs import log_config
from policyengine.api.metrics import MULTIPROC_ENV, serve_plain
from policyengine.api.protocol import HttpLimits, protocol_factory
from policyengine.api.settings import Settings
from policyengine.api.tls import context_factory

# The protocol's body timer is a backstop: endpoints that read a body give up a little earlier, with a
# 408 that says so, and the webhooks within their deadline.
BODY_BACKSTOP_SECONDS = 1.0


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        header_seconds=settings.header_timeout_seconds,
        body_seconds=settings.body_timeout_seconds + BODY_BACKSTOP_SECONDS,
        max_head_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
    )


def client_cas(settings: Settings) -> tuple[Path, ...]:
    """Every CA file whose certificates some endpoint accepts (the TLS layer verifies against all)."""
    return tuple(p for p in (settings.client_ca, settings.api_client_ca, settings.admin_client_ca) if p is not None)


def prepare_runtime(settings: Settings) -> Settings:
    """Settings with a runtime dir (created when missing) and the environment the workers read."""
    runtime = settings.runtime_dir or Path(tempfile.mkdtemp(prefix="policyengine-"))
    runtime.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(update={"runtime_dir": runtime})
    if settings.workers > 1:
        metrics_dir = runtime / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)  # samples of a previous run would be summed in
        metrics_dir.mkdir()
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
    os.environ.update(settings.to_environment())
    return settings


APP_FACTORY = "policyengine.api.app:app_from_environment"


def run(settings: Settings, factory: str = APP_FACTORY) -> None:
    """Serve `factory`'s app until interrupted (blocks); `policyengine audit serve` passes its own."""
    if settings.tls_cert is None or settings.tls_key is None:
        raise ValueError("HTTPS only: pass --tls-cert and --tls-key, or --dev-certs")
    settings = prepare_runtime(settings)
    if settings.metrics_port is not None:
        serve_plain(settings.host, settings.metrics_port)
    uvicorn.run(
        factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        http="httptools" if settings.stock_http else protocol_factory(http_limits(settings)),
        ssl_certfile=str(settings.tls_cert),
        ssl_keyfile=str(settings.tls_key),
        ssl_context_factory=context_factory(
            settings.cert_check_seconds, settings.tls_min_version, client_cas(settings)
        ),
        log_config=log_config(settings.log_level),
        log_level=settings.log_level,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=10,
    )
