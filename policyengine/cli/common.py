"""Options and error handling shared by the commands: policy dir, engine choice, one-line errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from policyengine.engine import ENGINE_KINDS, Engine, EngineError, make_engine
from policyengine.policy import LoadedPolicy, PolicyError, load_policy
from policyengine.resources import default_policies

DEFAULT_POLICIES = default_policies()

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 2

PoliciesOption = Annotated[
    Path | None,
    typer.Option(
        "--policies",
        "--policy",
        "-p",
        help="Policy repo directory (default: the bundled policies/).",
        show_default=False,
    ),
]
# The output format, named as conftest names it (-o/--output); --format is kept as an alias.
OutputOption = Annotated[
    str, typer.Option("--output", "-o", "--format", help="Output format: text | json | sarif | junit.")
]
EngineOption = Annotated[str, typer.Option("--engine", help=f"Rego engine: {' | '.join(ENGINE_KINDS)}.")]
OpaUrlOption = Annotated[str | None, typer.Option("--opa-url", help="OPA server URL for --engine opa.")]
NamespaceOption = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace of objects that name none (as kubectl apply -n).")
]
StrictOption = Annotated[
    bool, typer.Option("--strict", help="Files that hold no Kubernetes objects are errors, not notes.")
]
OpaTokenOption = Annotated[
    str | None, typer.Option("--opa-token", envvar="POLICYENGINE_OPA_TOKEN", help="Bearer token for the OPA server.")
]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one clear line to stderr and exit (never a traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def open_policy(directory: Path | None) -> LoadedPolicy:
    """Load the policy repo or exit 2 with every problem listed (file:line: what to fix)."""
    path = directory or DEFAULT_POLICIES
    if not path.is_dir():
        fail(f"policy directory {path} does not exist (pass --policies DIR)")
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        for problem in exc.errors:
            err_console.print(f"[red]{problem}[/]", soft_wrap=True)
        for warning in exc.warnings:
            err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
        fail(f"the policy repo {path} has {len(exc.errors)} error(s); fix them and retry")
    for warning in policy.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    return policy


# The CLI's bound on one OPA request: a command is not on a request path (the server's is 1 s), and a
# Rego unit test or an explain may take OPA a while on a busy machine.
CLI_OPA_TIMEOUT_S = 10.0


def open_engine(kind: str, opa_url: str | None, opa_token: str | None) -> Engine:
    try:
        return make_engine(kind, opa_url=opa_url, opa_token=opa_token, timeout=CLI_OPA_TIMEOUT_S)
    except EngineError as exc:
        fail(str(exc))


def parse_time(value: str | None) -> datetime | None:
    """`--time` as an aware datetime (UTC when no zone is given); exit 2 when unreadable."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--time {value!r} is not an ISO 8601 date or time (e.g. 2026-11-26 or 2026-11-26T10:00:00Z)")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
