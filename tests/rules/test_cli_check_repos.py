"""`policyengine check` on real repositories: namespaces (-n), stdin, kustomizations, Helm charts and
other files that are not Kubernetes objects, the summary, conftest's flags and the exit codes.

The kustomization tests run the real `kubectl kustomize` (kubectl 1.32, installed by
scripts/system-deps.sh); one test takes kubectl off PATH to show the message that says how to pipe.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli import ROOT, run

from policyengine.resources import default_policies

REPROS = ROOT / "tests" / "fixtures" / "crossings" / "repros"
GTP_NO_NAMESPACE = REPROS / "no-namespace-applied-with-n.yaml"


def results(stdout: str) -> list[dict[str, object]]:
    doc = json.loads(stdout)
    return list(doc["results"])


def test_namespace_flag_places_objects_without_one_and_says_so() -> None:
    applied = run("check", str(GTP_NO_NAMESPACE), "--cluster", "eu-1", "-n", "shop", "-o", "json")
    assert applied.returncode == 1, applied.stderr  # shop/profile holds PIPL data: denied
    (result,) = results(applied.stdout)
    assert result["resource"]["namespace"] == "shop" and result["namespace_from"] == "--namespace"  # type: ignore[index]
    unplaced = run("check", str(GTP_NO_NAMESPACE), "--cluster", "eu-1", "-o", "json")
    assert unplaced.returncode == 0
    (result,) = results(unplaced.stdout)
    assert result["resource"]["namespace"] == "default" and result["namespace_from"] == "default"  # type: ignore[index]
    text = run("check", str(GTP_NO_NAMESPACE), "--cluster", "eu-1")
    assert "no namespace: decided in default; pass -n NAMESPACE" in text.stdout


def test_namespace_flag_refuses_an_object_of_another_namespace_like_kubectl() -> None:
    result = run("check", str(REPROS / "typed-list.yaml"), "--cluster", "eu-1", "--namespace", "payments")
    assert result.returncode == 2
    assert "its namespace 'shop' does not match --namespace 'payments'" in result.stderr


def test_stdin_is_read_with_a_dash() -> None:
    text = (REPROS / "gtp-activeactive-no-targets.yaml").read_text()
    result = run("check", "-", "--cluster", "eu-1", "-o", "json", stdin=text)
    assert result.returncode == 0, result.stderr
    (item,) = results(result.stdout)
    assert item["file"] == "<stdin>" and item["decision"] == "rewrite"


@pytest.mark.parametrize("directory", ["kustomize-namespace", "kustomize-namespace-typed"])
def test_kustomization_is_rendered_with_its_namespace(directory: str) -> None:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not installed (scripts/system-deps.sh installs it): kustomizations need it")
    result = run("check", str(REPROS / directory), "--cluster", "eu-1", "-o", "json")
    assert result.returncode == 1, result.stderr  # shop/profile (PIPL) to us-1: denied
    (item,) = results(result.stdout)
    assert item["resource"]["namespace"] == "shop" and item["namespace_from"] == "object"  # type: ignore[index]
    assert str(item["file"]).endswith(f"{directory} (kustomize)")


def test_kustomization_without_kubectl_says_how_to_pipe(tmp_path: Path) -> None:
    python_dir = Path(shutil.which("python3") or "/usr/bin/python3").parent
    result = run("check", str(REPROS / "kustomize-namespace"), "--cluster", "eu-1", path=str(python_dir))
    if shutil.which("kubectl", path=str(python_dir)):
        pytest.fail(f"kubectl is in {python_dir}: cannot take it off PATH for this test")
    assert result.returncode == 2
    assert "kubectl is not on PATH" in result.stderr and "| policyengine check -" in result.stderr


def write_mixed_repo(root: Path) -> None:
    """A repository as found in the wild: objects, a Helm chart, a kustomization, other YAML/JSON."""
    (root / "apps").mkdir(parents=True)
    (root / "apps" / "gtp.yaml").write_text((REPROS / "gtp-activeactive-no-targets.yaml").read_text())
    (root / "apps" / "local.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {a: b}\n"
    )
    chart = root / "charts" / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text((REPROS / "dir-with-non-kubernetes-file" / "Chart.yaml").read_text())
    (chart / "values.yaml").write_text("replicas: 2\nimage: {tag: '1.0'}\n")
    (chart / "templates" / "service.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n  labels:\n"
        '    {{- include "demo.labels" . | nindent 4 }}\nspec:\n  ports: [{port: 80}]\n'
    )
    shutil.copytree(REPROS / "kustomize-namespace", root / "overlays" / "shop")
    (root / "package.json").write_text('{"name": "site", "version": "1.0.0"}\n')
    (root / "openapi.yaml").write_text("openapi: 3.0.3\ninfo: {title: api, version: '1'}\npaths: {}\n")
    (root / "mkdocs.yml").write_text("site_name: docs\nnav: [index.md]\n")


def test_mixed_repository_decides_every_object_and_exits_by_them_alone(tmp_path: Path) -> None:
    write_mixed_repo(tmp_path)
    result = run("check", str(tmp_path), "--cluster", "eu-1")
    assert result.returncode == 1, result.stdout + result.stderr  # the kustomized GTP is denied
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 6, notes  # Chart.yaml, values.yaml, the template, package.json, openapi.yaml, mkdocs.yml
    expected = (
        "Chart.yaml: skipped: Helm chart metadata",
        "values.yaml: skipped: Helm values",
        "service.yaml: skipped: a template of the Helm chart",
        "package.json: skipped",
        "openapi.yaml: skipped: an OpenAPI document",
        "mkdocs.yml: skipped: no document has apiVersion",
    )
    for part in expected:
        assert any(part in n for n in notes), (part, notes)
    assert "3 object(s) read, 2 with a cross-cluster route" in result.stdout
    assert "6 file(s) skipped" in result.stdout
    assert "REWRITE" in result.stdout and "DENY" in result.stdout


def test_strict_makes_the_skipped_files_errors(tmp_path: Path) -> None:
    write_mixed_repo(tmp_path)
    result = run("check", str(tmp_path), "--cluster", "eu-1", "--strict")
    assert result.returncode == 2
    assert "Chart.yaml: Helm chart metadata (--strict)" in result.stderr


def test_directory_with_a_chart_file_decides_the_rest() -> None:
    result = run("check", str(REPROS / "dir-with-non-kubernetes-file"), "--cluster", "eu-1", "-o", "json")
    assert result.returncode == 0, result.stderr  # the GTP is rewritten, nothing denied
    doc = json.loads(result.stdout)
    assert doc["summary"]["read"] == 1 and doc["summary"]["with_routes"] == 1 and doc["summary"]["skipped"] == 1
    assert [r["decision"] for r in doc["results"]] == ["rewrite"]


def test_summary_counts_objects_with_routes_apart_from_those_read() -> None:
    result = run("check", str(REPROS / "gtp-locality-with-targets.yaml"), "--cluster", "eu-1")
    assert result.returncode == 0
    assert "1 object(s) read, 0 with a cross-cluster route" in result.stdout
    assert "note: spec.targets (us-east-1/default/default/us-1) ignored" in result.stdout


def test_conftest_flags_output_and_policy() -> None:
    short = run("check", str(GTP_NO_NAMESPACE), "--cluster", "eu-1", "-o", "json", "-p", str(default_policies()))
    long = run(
        "check", str(GTP_NO_NAMESPACE), "--cluster", "eu-1", "--output", "json", "--policy", str(default_policies())
    )
    legacy = run(
        "check", str(GTP_NO_NAMESPACE), "--cluster", "eu-1", "--format", "json", "--policies", str(default_policies())
    )
    for result in (short, long, legacy):
        assert result.returncode == 0, result.stderr
        assert results(result.stdout)[0]["decision"] == "allow"
    assert run("check", str(GTP_NO_NAMESPACE), "--cluster", "eu-1", "-o", "yaml").returncode == 2
