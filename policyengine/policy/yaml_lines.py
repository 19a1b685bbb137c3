"""YAML that remembers where things are: every mapping key and list item keeps its source line.

The policy files are read as plain data (mappings, lists, scalars) with two departures from PyYAML's
YAML 1.1 defaults, both to avoid silent surprises in policy data:

- only `true`/`false` are booleans (YAML 1.2): `NO` is Norway, `yes`/`on` stay strings;
- dates stay strings (`2026-11-01`), so the models can report a bad date with its line instead of the
  parser failing on it.

Duplicate keys in a mapping are reported (PyYAML would keep the last one silently).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode


class LineDict(dict[Any, Any]):
    """A mapping read from YAML: `line` is where it starts, `key_lines[key]` where each key is."""

    line: int
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A sequence read from YAML: `line` is where it starts, `item_lines[i]` where item i starts."""

    line: int
    item_lines: list[int]


@dataclass(frozen=True, slots=True)
class YamlIssue:
    """A problem found while reading YAML (malformed text, duplicate key)."""

    line: int | None
    message: str


_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_DROPPED_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}


class _LineLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, dates as strings, and line-keeping containers."""

    issues: list[YamlIssue]


_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))


def _construct_mapping(loader: _LineLoader, node: MappingNode) -> Any:
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    yield mapping
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key_line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable) or isinstance(key, (LineDict, LineList)):
            loader.issues.append(YamlIssue(key_line, "a mapping key must be a plain value (quote it)"))
            continue
        if key in mapping:
            loader.issues.append(
                YamlIssue(
                    key_line,
                    f"duplicate key {key!r} (first at line {mapping.key_lines[key]}; keep one of them)",
                )
            )
            continue
        mapping[key] = loader.construct_object(value_node, deep=False)
        mapping.key_lines[key] = key_line


def _construct_sequence(loader: _LineLoader, node: SequenceNode) -> Any:
    items = LineList()
    items.line = node.start_mark.line + 1
    items.item_lines = []
    yield items
    for child in node.value:
        items.append(loader.construct_object(child, deep=False))
        items.item_lines.append(child.start_mark.line + 1)


def _construct_timestamp(loader: _LineLoader, node: Node) -> Any:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:omap", _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def load_yaml(text: str) -> tuple[Any, list[YamlIssue]]:
    """Parse one YAML document. Returns (data or None, issues); never raises on bad input."""
    loader = _LineLoader(text)
    loader.issues = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        return None, [
            YamlIssue(line, f"malformed YAML: {what} (fix the syntax: indentation, quotes, brackets)")
        ]
    except yaml.YAMLError as exc:
        return None, [YamlIssue(None, f"malformed YAML: {exc} (fix the syntax)")]
    finally:
        loader.dispose()
    return data, loader.issues


def line_at(root: Any, path: Sequence[Any]) -> int | None:
    """The line of the deepest node of `path` (keys and indexes) that exists in `root`."""
    line: int | None = getattr(root, "line", None)
    node = root
    for part in path:
        if isinstance(node, LineDict) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


def plain(value: Any) -> Any:
    """The same data as plain dicts and lists (for hashing and JSON Schema validation)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
