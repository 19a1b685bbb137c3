"""`policyengine check|test|explain`: offline evaluation of manifests and Rego unit tests."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add check, test, explain and run-example to the main app."""
