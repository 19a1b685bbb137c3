"""Reading manifests from files, directories and stdin, like conftest: multi-document YAML and JSON.

`read_manifests(paths)` walks directories recursively (`*.yaml`, `*.yml`, `*.json`, sorted, hidden
files and directories skipped; `-` is stdin), splits YAML streams into documents, expands `kind: List`
and typed lists (any `<Kind>List` with `items`), and returns the documents with their file, document
index and line. What goes wrong is a value, never an exception:

- a problem (`FILE:LINE: document N: what is wrong (what to do)`): a file that should hold Kubernetes
  objects but cannot be read as such;
- a skipped file (one-line note): a file that is not Kubernetes objects at all (a Helm `Chart.yaml`,
  `values.yaml` or template with `{{ }}`, a `package.json`, an OpenAPI document, any YAML/JSON none of
  whose documents has `apiVersion` and `kind`, `kind` or `metadata`); `strict=True` makes these problems.

A directory holding a kustomization is rendered with `kubectl kustomize` (kustomize.py) instead of
being walked: its `namespace:` and patches decide what is applied.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from policyengine.admission.kustomize import KUSTOMIZATION_FILES, KustomizeError, kustomization_file, render

SUFFIXES = (".yaml", ".yml", ".json")
STDIN = Path("-")
# Files that are never Kubernetes objects, by name: Helm chart metadata and values, package manifests.
NOT_KUBERNETES = {
    "Chart.yaml": "Helm chart metadata",
    "Chart.lock": "Helm chart lock file",
    "values.yaml": "Helm values",
    "values.yml": "Helm values",
    "values.schema.json": "Helm values schema",
    "package.json": "npm package manifest",
    "package-lock.json": "npm lock file",
    "composer.json": "Composer package manifest",
}
_OPENAPI_KEYS = ("openapi", "swagger")


@dataclass(frozen=True, slots=True)
class ManifestDocument:
    """One Kubernetes object read from `file`: the `index`-th document (0-based), starting at `line`.

    `rendered` names the kustomization directory when the document is `kubectl kustomize` output (then
    `line` is a line of that output)."""

    file: Path
    index: int
    line: int
    body: Mapping[str, Any]
    rendered: str = ""

    @property
    def display(self) -> str:
        """The file as shown to users: `DIR (kustomize)` for rendered documents, `<stdin>` for stdin."""
        if self.rendered:
            return f"{self.rendered} (kustomize)"
        return "<stdin>" if self.file == STDIN else str(self.file)

    @property
    def location(self) -> str:
        return f"{self.display}:{self.line} (document {self.index + 1})"


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """A file or document that is not a readable Kubernetes object."""

    file: Path
    message: str
    line: int | None = None
    index: int | None = None

    def __str__(self) -> str:
        name = "<stdin>" if self.file == STDIN else str(self.file)
        where = f"{name}:{self.line}" if self.line is not None else name
        if self.index is not None:
            where += f": document {self.index + 1}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file that holds no Kubernetes objects, and why (one line)."""

    file: Path
    reason: str

    def __str__(self) -> str:
        return f"{'<stdin>' if self.file == STDIN else self.file}: skipped: {self.reason}"


@dataclass(slots=True)
class ManifestSet:
    """Documents read, problems found and files skipped, in file order."""

    documents: list[ManifestDocument] = field(default_factory=list)
    problems: list[ManifestProblem] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def extend(self, other: ManifestSet) -> None:
        self.documents.extend(other.documents)
        self.problems.extend(other.problems)
        self.skipped.extend(other.skipped)

    @property
    def bodies(self) -> list[Mapping[str, Any]]:
        return [d.body for d in self.documents]


def _is_object(body: Any) -> bool:
    return isinstance(body, Mapping) and all(
        isinstance(body.get(k), str) and body.get(k) for k in ("apiVersion", "kind")
    )


def _list_items(body: Mapping[str, Any]) -> list[Any] | None:
    """The items of a `List` or typed `<Kind>List`, each with the apiVersion and kind a typed list's
    items may leave out; None when `body` is not a list."""
    kind = str(body["kind"])
    items = body.get("items")
    if not kind.endswith("List") or not isinstance(items, list):
        return None
    if kind == "List":
        return items
    out: list[Any] = []
    for item in items:
        if isinstance(item, Mapping):
            item = {"apiVersion": body["apiVersion"], "kind": kind[: -len("List")], **item}
        out.append(item)
    return out


def _check(file: Path, index: int, line: int, body: Any, out: ManifestSet, rendered: str = "") -> None:
    """Add a document, or the problem with it; a list adds its items."""
    if body is None:
        return
    if not isinstance(body, Mapping):
        out.problems.append(
            ManifestProblem(
                file,
                f"is not a mapping but {type(body).__name__} (each document must be one Kubernetes object)",
                line,
                index,
            )
        )
        return
    missing = [k for k in ("apiVersion", "kind") if not isinstance(body.get(k), str) or not body.get(k)]
    if missing:
        out.problems.append(
            ManifestProblem(
                file,
                f"has no {' or '.join(missing)} (add it: every object names its apiVersion and kind)",
                line,
                index,
            )
        )
        return
    items = _list_items(body)
    if items is not None:
        for item in items:
            _check(file, index, line, item, out, rendered)
        return
    out.documents.append(ManifestDocument(file, index, line, body, rendered))


def _not_kubernetes(documents: list[tuple[int, Any]], text: str) -> str | None:
    """Why parsed documents are not Kubernetes objects at all, or None when some of them are meant to be
    (a document with `apiVersion` and `kind`, or with `kind` or `metadata`: a broken object is a problem)."""
    if any(
        _is_object(body) or (isinstance(body, Mapping) and ("kind" in body or "metadata" in body))
        for _, body in documents
    ):
        return None
    bodies = [body for _, body in documents if body is not None]
    if not bodies:
        return None  # an empty file: nothing to read, nothing to say
    if any(isinstance(b, Mapping) and any(k in b for k in _OPENAPI_KEYS) for b in bodies):
        return "an OpenAPI document, not a Kubernetes object"
    if "{{" in text:
        return "a template ({{ }}): render it first, e.g. helm template CHART | policyengine check - ..."
    return "no document has apiVersion and kind: not a Kubernetes object"


# libyaml's parser when PyYAML was built with it (the wheels are): the same documents, marks and errors,
# about ten times faster than the pure-Python one (`check` over 10,000 objects spent an eighth of its
# time there).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(text: str) -> tuple[list[tuple[int, Any]], tuple[str, int | None, int] | None]:
    """(line, body) of every document, and the YAML error (message, line, document index) if any."""
    documents: list[tuple[int, Any]] = []
    loader = _LOADER(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else 1
            documents.append((line, loader.construct_document(node) if node is not None else None))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        return documents, (problem, mark.line + 1 if mark is not None else None, len(documents))
    finally:
        loader.dispose()
    return documents, None


def read_text(text: str, file: Path, rendered: str = "") -> ManifestSet:
    """Documents of one file's text (YAML, or JSON when the file ends in .json)."""
    out = ManifestSet()
    if file.suffix == ".json":
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            out.problems.append(ManifestProblem(file, f"invalid JSON: {exc.msg} (fix the syntax)", exc.lineno))
            return out
        bodies = body if isinstance(body, list) else [body]
        reason = _not_kubernetes([(1, b) for b in bodies], text)
        if reason is not None:
            out.skipped.append(SkippedFile(file, reason))
            return out
        for i, item in enumerate(bodies):
            _check(file, i, 1, item, out, rendered)
        return out
    documents, error = _parse_yaml(text)
    if error is not None and "{{" in text:
        out.skipped.append(SkippedFile(file, _not_kubernetes([], text) or "a template ({{ }})"))
        return out
    reason = _not_kubernetes(documents, text) if error is None else None
    if reason is not None:
        out.skipped.append(SkippedFile(file, reason))
        return out
    for index, (line, body) in enumerate(documents):
        _check(file, index, line, body, out, rendered)
    if error is not None:
        problem, error_line, error_index = error
        out.problems.append(ManifestProblem(file, f"invalid YAML: {problem} (fix the syntax)", error_line, error_index))
    return out


def _skip_by_name(file: Path, chart_roots: set[Path]) -> str | None:
    """Why a file is not Kubernetes objects, by its name or place in a Helm chart; None to read it."""
    if file.name in NOT_KUBERNETES:
        return NOT_KUBERNETES[file.name]
    if file.name.startswith("values") and file.suffix in (".yaml", ".yml"):
        return "Helm values"
    if file.name.startswith("tsconfig") and file.suffix == ".json":
        return "TypeScript configuration"
    for root in chart_roots:
        if root / "templates" in file.parents:
            return (
                f"a template of the Helm chart {root}: render it first: helm template {root} | policyengine check - ..."
            )
    return None


def _walk(path: Path) -> tuple[list[Path], list[Path]]:
    """(files to read, kustomization directories to render) under a directory, sorted."""
    files: list[Path] = []
    kustomizations: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(path):
        here = Path(dirpath)
        if kustomization_file(here) is not None:
            kustomizations.append(here)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(here / f for f in filenames if not f.startswith(".") and Path(f).suffix in SUFFIXES)
    return sorted(files), sorted(kustomizations)


def _read_file(file: Path, chart_roots: set[Path], out: ManifestSet) -> None:
    reason = _skip_by_name(file, chart_roots)
    if reason is not None:
        out.skipped.append(SkippedFile(file, reason))
        return
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        out.problems.append(ManifestProblem(file, f"cannot be read: {exc} (check permissions/encoding)"))
        return
    out.extend(read_text(text, file))


def _render(directory: Path, out: ManifestSet) -> None:
    file = kustomization_file(directory) or directory / KUSTOMIZATION_FILES[0]
    try:
        text = render(directory)
    except KustomizeError as exc:
        out.problems.append(ManifestProblem(directory, str(exc)))
        return
    out.extend(read_text(text, file, rendered=str(directory)))


def read_stdin() -> str:
    """All of standard input (`check -`)."""
    return sys.stdin.read()


def read_manifests(paths: Iterable[Path | str], stdin: str | None = None) -> ManifestSet:
    """Every document under `paths` (files, directories, `-` for `stdin`), with problems as values."""
    out = ManifestSet()
    for raw in paths:
        path = Path(raw)
        if path == STDIN:
            out.extend(read_text(stdin if stdin is not None else read_stdin(), STDIN))
            continue
        if not path.exists():
            out.problems.append(ManifestProblem(path, "no such file or directory (check the path)"))
            continue
        if path.is_file() and path.name in KUSTOMIZATION_FILES:
            _render(path.parent, out)
            continue
        if path.is_file():
            _read_file(path, set(), out)
            continue
        files, kustomizations = _walk(path)
        chart_roots = {f.parent for f in files if f.name == "Chart.yaml"}
        for file in files:
            _read_file(file, chart_roots, out)
        for directory in kustomizations:
            _render(directory, out)
    return out
