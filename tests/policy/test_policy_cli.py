"""`policyengine policy schema|lint|show` through the real Typer app and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from policy_fixtures import edit
from typer.testing import CliRunner

from policyengine.cli.policy import app

runner = CliRunner()


def test_lint_clean_with_warning_exits_0(repo: Path) -> None:
    result = runner.invoke(app, ["lint", str(repo), "--today", "2026-11-26"])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "scc-checkout-us1" in result.output
    assert "ok " in result.output and "sha256:" in result.output


def test_lint_errors_exit_1_and_list_every_problem(repo: Path) -> None:
    edit(repo / "clusters.yaml", "region: aws/eu-central-1", "region: aws/eu-west-9")
    edit(repo / "enforcement.yaml", "default: deny", "default: refuse")
    result = runner.invoke(app, ["lint", str(repo), "--today", "2026-11-26"])
    assert result.exit_code == 1, result.output
    assert f"{repo / 'clusters.yaml'}:" in result.output and "unknown region 'aws/eu-west-9'" in result.output
    assert "'refuse'" in result.output
    assert "2 error(s)" in result.output


def test_lint_json(repo: Path) -> None:
    edit(repo / "regions.yaml", "jurisdiction: FR", "jurisdiction: FX")
    result = runner.invoke(app, ["lint", str(repo), "--format", "json", "--today", "2026-11-26"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["errors"] == 1 and report["warnings"] == 1
    error = next(p for p in report["problems"] if p["severity"] == "error")
    assert error["file"] == str(repo / "regions.yaml") and isinstance(error["line"], int)


def test_lint_missing_directory_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lint", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_lint_default_repo() -> None:
    result = runner.invoke(app, ["lint", "--today", "2026-11-26"])
    assert result.exit_code == 0, result.output


def test_schema_command() -> None:
    combined = runner.invoke(app, ["schema"])
    assert combined.exit_code == 0
    assert "clusters" in json.loads(combined.stdout)["$defs"]
    one = runner.invoke(app, ["schema", "--file", "clusters"])
    assert one.exit_code == 0 and json.loads(one.stdout)["title"] == "clusters.yaml"
    bad = runner.invoke(app, ["schema", "--file", "nodes"])
    assert bad.exit_code == 2 and "unknown policy file" in bad.output


def test_show_prints_compiled_data(repo: Path) -> None:
    result = runner.invoke(app, ["show", str(repo), "--today", "2026-11-26"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["revision"].startswith("sha256:") and data["clusters"]["cn-1"]["jurisdiction"] == "CN"
    section = runner.invoke(app, ["show", str(repo), "--section", "groups"])
    assert json.loads(section.stdout)["EEA"][0] == "AT"
    edit(repo / "clusters.yaml", "entity: adnet", "entity: adnett")
    broken = runner.invoke(app, ["show", str(repo)])
    assert broken.exit_code == 1


def test_init_writes_the_bundled_repo_and_never_overwrites(tmp_path: Path) -> None:
    from policyengine.policy import load_policy
    from policyengine.resources import default_policies

    target = tmp_path / "compliance" / "policies"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert "wrote 9 policy files" in result.output
    for source in default_policies().glob("*.yaml"):
        assert (target / source.name).read_text() == source.read_text()
    assert load_policy(target).revision == load_policy(default_policies()).revision
    assert runner.invoke(app, ["lint", str(target)]).exit_code == 0
    (target / "clusters.yaml").write_text("clusters: []\n")  # the user's edit
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code == 2 and "already exist" in again.output and "clusters.yaml" in again.output
    assert (target / "clusters.yaml").read_text() == "clusters: []\n"
    forced = runner.invoke(app, ["init", str(target), "--force"])
    assert forced.exit_code == 0 and (target / "clusters.yaml").read_text() != "clusters: []\n"
    (tmp_path / "file").write_text("x")
    assert runner.invoke(app, ["init", str(tmp_path / "file")]).exit_code == 2


def test_a_command_on_a_broken_repo_counts_errors_not_warnings(repo: Path) -> None:
    from policyengine.cli.main import app as main

    edit(repo / "clusters.yaml", "region: aws/eu-central-1", "region: aws/eu-west-9")
    result = CliRunner().invoke(main, ["test", "--policies", str(repo)])
    assert result.exit_code == 2, result.output
    assert "has 1 error(s)" in result.output  # the expired SCC is a warning, not a second problem
    assert "warning:" in result.output and "scc-checkout-us1" in result.output
