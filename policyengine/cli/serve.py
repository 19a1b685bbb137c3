"""`policyengine serve`: the HTTPS server (admission webhook, routing filter, audit, health)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the `serve` command to the main app."""
