"""What the server logs, and what it keeps out: uvicorn's logging config, with access lines that carry
no query string and no original path of an authorization check.

A query string may carry tokens and personal data (`?email=…&token=…`), and the path after `/v1/authz/`
is the original request's path (`/users/jane@example.com`), so the access log keeps the method, the
endpoint and the status only: `GET /v1/authz/… HTTP/1.1" 200`. Database URLs are shown through
`policyengine.audit.store.display_url` (password masked) wherever they are printed.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOG_LEVELS, LOGGING_CONFIG

AUTHZ_PREFIX = "/v1/authz/"


def logged_path(path: str) -> str:
    """The part of a request path the access log keeps: no query, no original path under /v1/authz/."""
    path = path.split("?", 1)[0]
    if path.startswith(AUTHZ_PREFIX):
        return AUTHZ_PREFIX + "…"
    return path


class PrivateAccessLog(logging.Filter):
    """Rewrites uvicorn's access records (client, method, path with query, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            record.args = (args[0], args[1], logged_path(str(args[2])), args[3], args[4])
        return True


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's default logging config with `PrivateAccessLog` on the access handler, and the
    `policyengine` loggers (a reload naming its revision, a failed reload and why) on its default handler
    at the server's log level."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["private_access"] = {"()": f"{__name__}.PrivateAccessLog"}
    config["handlers"]["access"]["filters"] = ["private_access"]
    config["loggers"]["policyengine"] = {
        "handlers": ["default"],
        "level": LOG_LEVELS.get(level.lower(), level.upper()),
        "propagate": False,
    }
    return config
