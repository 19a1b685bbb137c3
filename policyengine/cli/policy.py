"""`policyengine policy init|schema|lint|show`: start a policy repo from the bundled one; the repo's JSON
Schema, its problems, its compiled data."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from policyengine.cli.common import DEFAULT_POLICIES
from policyengine.policy import check_policy
from policyengine.policy.models import FILE_MODELS
from policyengine.policy.schema import combined_schema, file_schema

app = typer.Typer(help="Start and inspect the policy repo: init, schema, lint, show.", no_args_is_help=True)

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

DirArgument = Annotated[
    Path | None,
    typer.Argument(help="Policy repo directory (default: the bundled policies/).", show_default=False),
]
TodayOption = Annotated[
    str | None,
    typer.Option(
        "--today", help="Date the expiry checks as of YYYY-MM-DD (default: today).", show_default=False
    ),
]


def _today(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        _err.print(f"[bold red]error:[/] --today {value!r} is not a date (write YYYY-MM-DD)")
        raise typer.Exit(2) from None


def _directory(directory: Path | None) -> Path:
    path = directory or DEFAULT_POLICIES
    if not path.is_dir():
        _err.print(
            f"[bold red]error:[/] policy directory {escape(str(path))} does not exist (pass an existing DIR)"
        )
        raise typer.Exit(2)
    return path


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the new policy repo (created if missing).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite policy files already there.")] = False,
) -> None:
    """Copy the bundled default policy repo into DIRECTORY, as the start of your own."""
    sources = sorted(p for p in DEFAULT_POLICIES.iterdir() if p.is_file() and p.suffix == ".yaml")
    if directory.exists() and not directory.is_dir():
        _err.print(f"[bold red]error:[/] {escape(str(directory))} exists and is not a directory")
        raise typer.Exit(2)
    there = [directory / p.name for p in sources if (directory / p.name).exists()]
    if there and not force:
        names = ", ".join(escape(str(p)) for p in there)
        _err.print(f"[bold red]error:[/] {names} already exist: nothing written (pass --force to overwrite)")
        raise typer.Exit(2)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for source in sources:
            shutil.copyfile(source, directory / source.name)
    except OSError as exc:
        _err.print(f"[bold red]error:[/] cannot write {escape(str(directory))}: {escape(exc.strerror or str(exc))}")
        raise typer.Exit(2) from None
    _out.print(f"wrote {len(sources)} policy files to {escape(str(directory))}: {', '.join(p.name for p in sources)}")
    _out.print("next: edit clusters.yaml (your clusters) and services.yaml, then")
    _out.print(f"  policyengine policy lint {escape(str(directory))}")
    _out.print(f"  policyengine test --policies {escape(str(directory))}")
    _out.print(f"  policyengine check --policies {escape(str(directory))} --cluster NAME MANIFESTS...")
    _out.print("your own Rego modules go in rego/ beside them (packages under policyengine)")


@app.command()
def schema(
    file: Annotated[
        str | None,
        typer.Option(
            "--file", help=f"Only this file's schema: {', '.join(FILE_MODELS)}.", show_default=False
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of the policy files (for yaml-language-server and CI)."""
    if file is None:
        document = combined_schema()
    else:
        name = file.removesuffix(".yaml").removesuffix(".yml")
        if name not in FILE_MODELS:
            _err.print(
                f"[bold red]error:[/] unknown policy file {file!r} (use one of {', '.join(FILE_MODELS)})"
            )
            raise typer.Exit(2)
        document = file_schema(name)
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


@app.command()
def lint(
    directory: DirArgument = None,
    output_format: Annotated[str, typer.Option("--output", "-o", "--format", help="text | json")] = "text",
    today: TodayOption = None,
) -> None:
    """Check a policy repo without evaluating anything; exit 1 on errors, 0 when clean or only warnings."""
    if output_format not in ("text", "json"):
        _err.print(f"[bold red]error:[/] --output {output_format!r} is not supported (use text or json)")
        raise typer.Exit(2)
    path = _directory(directory)
    policy, problems = check_policy(path, today=_today(today))
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    if output_format == "json":
        report = {
            "directory": str(path),
            "ok": policy is not None,
            "revision": policy.revision if policy is not None else None,
            "errors": len(errors),
            "warnings": len(warnings),
            "problems": [p.to_dict() for p in problems],
        }
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for problem in problems:
            colour, label = ("red", "error") if problem.severity == "error" else ("yellow", "warning")
            _out.print(f"{escape(problem.location)}: [{colour}]{label}:[/] {escape(problem.message)}")
        if policy is None:
            _out.print(
                f"[bold red]{len(errors)} error(s)[/], {len(warnings)} warning(s) in {escape(str(path))}"
            )
        else:
            _out.print(
                f"[green]ok[/] {escape(str(path))}: {len(warnings)} warning(s), revision {policy.revision}"
            )
    raise typer.Exit(1 if errors else 0)


@app.command()
def show(
    directory: DirArgument = None,
    section: Annotated[
        str | None,
        typer.Option(
            "--section", help="Only one key of the compiled data, e.g. clusters.", show_default=False
        ),
    ] = None,
    today: TodayOption = None,
) -> None:
    """Print the compiled JSON that Rego sees at data.policyengine.policy (with the revision)."""
    path = _directory(directory)
    policy, problems = check_policy(path, today=_today(today))
    if policy is None:
        for problem in problems:
            _err.print(escape(str(problem)))
        _err.print(
            f"[bold red]error:[/] policy repo {escape(str(path))} has errors (see policyengine policy lint)"
        )
        raise typer.Exit(1)
    document: object = policy.data
    if section is not None:
        if section not in policy.data:
            _err.print(f"[bold red]error:[/] no section {section!r} (use one of {', '.join(policy.data)})")
            raise typer.Exit(2)
        document = policy.data[section]
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
