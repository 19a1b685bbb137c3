"""Run the app on uvicorn over HTTPS, with one or several worker processes.

Workers are spawned processes that build the app with `app_from_environment`, so the settings travel as
JSON in the environment. With several workers, Prometheus runs in multiprocess mode (a directory of
per-worker sample files under the runtime dir, set before any worker imports prometheus_client) and
admin reloads reach every worker through a file in the same runtime dir. Each worker follows the
certificate files and reloads its TLS chain when they change. policyengine's own log lines (a policy
reload naming its revision, a failed reload and why) go to uvicorn's handler in uvicorn's format, at the
server's log level.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG

from policyengine.api.metrics import MULTIPROC_ENV
from policyengine.api.settings import Settings
from policyengine.api.tls import context_factory


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


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration with the `policyengine` loggers on its default handler."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["policyengine"] = {
        "handlers": ["default"],
        "level": LOG_LEVELS.get(level.lower(), level.upper()),
        "propagate": False,
    }
    return config


def run(settings: Settings) -> None:
    """Serve until interrupted (blocks)."""
    if settings.tls_cert is None or settings.tls_key is None:
        raise ValueError("HTTPS only: pass --tls-cert and --tls-key, or --dev-certs")
    settings = prepare_runtime(settings)
    uvicorn.run(
        "policyengine.api.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        ssl_certfile=str(settings.tls_cert),
        ssl_keyfile=str(settings.tls_key),
        ssl_context_factory=context_factory(settings.cert_check_seconds),
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=10,
    )
