"""Reading manifests from files and directories, like conftest: multi-document YAML and JSON.

`read_manifests(paths)` walks directories recursively (`*.yaml`, `*.yml`, `*.json`, sorted, hidden
directories skipped), splits YAML streams into documents, expands `kind: List`, and returns the
documents with their file, document index and line, plus every problem as a value
(`FILE:LINE: document N: what is wrong (what to do)`) instead of raising.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class ManifestDocument:
    """One Kubernetes object read from `file`: the `index`-th document (0-based), starting at `line`."""

    file: Path
    index: int
    line: int
    body: Mapping[str, Any]

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line} (document {self.index + 1})"


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """A file or document that is not a readable Kubernetes object."""

    file: Path
    message: str
    line: int | None = None
    index: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        if self.index is not None:
            where += f": document {self.index + 1}"
        return f"{where}: {self.message}"


@dataclass(slots=True)
class ManifestSet:
    """Documents read and problems found, in file order."""

    documents: list[ManifestDocument] = field(default_factory=list)
    problems: list[ManifestProblem] = field(default_factory=list)

    def extend(self, other: ManifestSet) -> None:
        self.documents.extend(other.documents)
        self.problems.extend(other.problems)

    @property
    def bodies(self) -> list[Mapping[str, Any]]:
        return [d.body for d in self.documents]


def _check(file: Path, index: int, line: int, body: Any, out: ManifestSet) -> None:
    """Add a document, or the problem with it; `kind: List` adds its items."""
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
    if body["kind"] == "List" and isinstance(body.get("items"), list):
        for item in body["items"]:
            _check(file, index, line, item, out)
        return
    out.documents.append(ManifestDocument(file, index, line, body))


def read_text(text: str, file: Path) -> ManifestSet:
    """Documents of one file's text (YAML, or JSON when the file ends in .json)."""
    out = ManifestSet()
    if file.suffix == ".json":
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            out.problems.append(
                ManifestProblem(file, f"invalid JSON: {exc.msg} (fix the syntax)", exc.lineno)
            )
            return out
        for i, item in enumerate(body if isinstance(body, list) else [body]):
            _check(file, i, 1, item, out)
        return out
    loader = yaml.SafeLoader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else 1
            _check(file, index, line, loader.construct_document(node) if node is not None else None, out)
            index += 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        out.problems.append(ManifestProblem(file, f"invalid YAML: {problem} (fix the syntax)", line, index))
    finally:
        loader.dispose()
    return out


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix in SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(path).parts[:-1])
    )


def read_manifests(paths: Iterable[Path | str]) -> ManifestSet:
    """Every document under `paths` (files or directories), with problems as values."""
    out = ManifestSet()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            out.problems.append(ManifestProblem(path, "no such file or directory (check the path)"))
            continue
        for file in _files(path):
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                out.problems.append(
                    ManifestProblem(file, f"cannot be read: {exc} (check permissions/encoding)")
                )
                continue
            out.extend(read_text(text, file))
    return out
