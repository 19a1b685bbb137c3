"""`policyengine audit ...` and `policyengine db ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Audit trail: verify, export, prune.", no_args_is_help=True)
db_app = typer.Typer(help="Audit database schema.", no_args_is_help=True)
