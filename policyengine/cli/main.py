"""Entry point of the `policyengine` command: assembles the sub-commands of each area."""

from __future__ import annotations

import typer

from policyengine.cli import audit, audit_report, bundle, live, policy, rules, serve, simulate

app = typer.Typer(
    name="policyengine",
    help="Compliance-aware traffic policy engine for multi-cluster Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
rules.register(app)  # check, test, explain, run-example
serve.register(app)  # serve
live.register(app)  # scan, inventory
simulate.register(app)  # simulate
app.add_typer(policy.app, name="policy")
audit_report.register()  # audit transfers, verify-report, serve (on audit.app)
app.add_typer(audit.app, name="audit")
app.add_typer(audit.db_app, name="db")
app.add_typer(bundle.app, name="bundle")

if __name__ == "__main__":
    app()
