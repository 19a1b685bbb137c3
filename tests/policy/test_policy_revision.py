"""The revision is a stable content hash of the data files and Rego modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from policy_fixtures import TODAY, edit

from policyengine.policy import load_policy


def _revision(directory: Path, bundled: Path | None = None) -> str:
    return load_policy(directory, today=TODAY, bundled_rego=bundled).revision


def test_stable_across_loads_and_processes(repo: Path) -> None:
    first = _revision(repo)
    assert _revision(repo) == first
    code = (
        "import datetime as dt, sys; from pathlib import Path; from policyengine.policy import load_policy; "
        "print(load_policy(Path(sys.argv[1]), today=dt.date(2026, 11, 26), bundled_rego=None).revision)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(repo)], capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == first


def test_comments_and_layout_do_not_count(repo: Path) -> None:
    first = _revision(repo)
    edit(repo / "clusters.yaml", "clusters:\n", "# a new comment\nclusters:   \n")
    edit(
        repo / "regions.yaml",
        "{provider: aws, code: us-east-1, jurisdiction: US, location: N. Virginia}",
        "{provider: aws,   code: us-east-1,\n     jurisdiction: US, location: N. Virginia}",
    )
    assert _revision(repo) == first


def test_changes_with_any_data_value(repo: Path) -> None:
    first = _revision(repo)
    edit(repo / "transfers.yaml", "expires: 2028-06-30", "expires: 2028-07-01")
    second = _revision(repo)
    assert second != first
    edit(
        repo / "services.yaml",
        "hosts: [checkout.shop.svc.clusterset.local]",
        "hosts: [checkout.shop.svc.clusterset.local, checkout.example]",
    )
    assert _revision(repo) not in (first, second)


def test_changes_with_a_rego_module(repo: Path, tmp_path: Path) -> None:
    bundled = tmp_path / "rego"
    bundled.mkdir()
    module = bundled / "gdpr.rego"
    module.write_text("package policyengine.gdpr\n", encoding="utf-8")
    first = _revision(repo, bundled)
    module.write_text("package policyengine.gdpr\n\nx := 1\n", encoding="utf-8")
    second = _revision(repo, bundled)
    assert second != first
    (repo / "rego").mkdir()
    (repo / "rego" / "own.rego").write_text("package policyengine.own\n", encoding="utf-8")
    assert _revision(repo, bundled) not in (first, second)
