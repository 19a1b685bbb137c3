"""`policyengine bundle ...`: package the policy as an OPA bundle for OPA's own distribution."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from policyengine.bundle import BundleError, build_bundle
from policyengine.cli.common import PoliciesOption, console, fail, open_policy

app = typer.Typer(
    help="OPA bundles of the policy (for opa run --bundle, bundle services, OCI).", no_args_is_help=True
)


@app.command("build")
def build_command(
    out: Annotated[Path, typer.Option("--out", help="Bundle file to write (.tar.gz).")],
    policies: PoliciesOption = None,
) -> None:
    """Build an OPA bundle (.manifest with revision and roots, data.json, the Rego modules)."""
    policy = open_policy(policies)
    try:
        info = build_bundle(policy.modules, policy.data, out, repo=policy.directory)
    except BundleError as exc:
        fail(str(exc))
    console.print(f"wrote {info.path} ({info.size} bytes, {len(info.files)} files)")
    console.print(f"revision {info.revision}")
    console.print(f"roots    {', '.join(info.roots)}")
    console.print(f"load it with: opa run --server --bundle {info.path}  (then policyengine --engine opa)")
    console.print("or publish it to a bundle service for: policyengine serve --policy-bundle-url URL")
