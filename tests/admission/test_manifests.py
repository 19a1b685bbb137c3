"""Reading manifests from files and directories: multi-document YAML, JSON, problems as values."""

from __future__ import annotations

import json
from pathlib import Path

from policyengine.admission.manifests import read_manifests

SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: checkout, namespace: shop}\n"


def test_multi_document_files_and_directories_recursively(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        SERVICE + "---\n---\n# comment\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n"
    )
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "c.yml").write_text(SERVICE)
    (tmp_path / "nested" / "d.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "d"}})
    )
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("broken: [")
    result = read_manifests([tmp_path])
    assert result.problems == []
    assert [(d.file.name, d.index, d.line, d.body["metadata"]["name"]) for d in result.documents] == [
        ("a.yaml", 0, 1, "checkout"),
        ("a.yaml", 2, 7, "b"),
        ("c.yml", 0, 1, "checkout"),
        ("d.json", 0, 1, "d"),
    ]
    assert result.documents[1].location.endswith("a.yaml:7 (document 3)")


def test_invalid_yaml_is_a_problem_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SERVICE + "---\napiVersion: v1\nkind: Service\nmetadata: {name: [x\n")
    result = read_manifests([bad])
    assert len(result.documents) == 1  # the document before the error is still read
    (problem,) = result.problems
    assert (problem.file, problem.index) == (bad, 1)
    assert problem.line is not None and problem.line >= 7
    assert "invalid YAML" in str(problem) and str(problem).startswith(f"{bad}:")


def test_documents_without_kind_or_not_a_mapping(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("metadata: {name: x}\n---\n- a\n- b\n---\napiVersion: v1\n---\napiVersion: v1\nkind: Service\n")
    problems = [str(p) for p in read_manifests([f]).problems]
    assert problems == [
        f"{f}:1: document 1: has no apiVersion or kind (add it: every object names its apiVersion and kind)",
        f"{f}:3: document 2: is not a mapping but list (each document must be one Kubernetes object)",
        f"{f}:6: document 3: has no kind (add it: every object names its apiVersion and kind)",
    ]


def test_a_file_without_any_kubernetes_object_is_skipped_with_a_reason(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("site_name: x\n---\n- a\n- b\n---\napiVersion: v1\n")
    read = read_manifests([f])
    assert read.problems == [] and read.documents == []
    assert [str(s) for s in read.skipped] == [
        f"{f}: skipped: no document has apiVersion and kind: not a Kubernetes object"
    ]


def test_list_kind_is_expanded_and_missing_paths_reported(tmp_path: Path) -> None:
    f = tmp_path / "list.json"
    f.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}},
                    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}},
                ],
            }
        )
    )
    result = read_manifests([f, tmp_path / "missing"])
    assert [d.body["metadata"]["name"] for d in result.documents] == ["a", "b"]
    assert [str(p) for p in result.problems] == [f"{tmp_path / 'missing'}: no such file or directory (check the path)"]


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_text('{\n  "apiVersion": "v1",\n  "kind": \n}\n')
    (problem,) = read_manifests([f]).problems
    assert problem.line == 4 and "invalid JSON" in problem.message
