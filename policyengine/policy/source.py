"""One policy file as read: its parsed YAML (with lines), its validated model, and its problems.

Validation keeps going after a bad item: the file model is validated once to report every schema
problem, then rebuilt from the items that are valid on their own, so that the cross-file checks still
run on the rest (and report their problems too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from policyengine.policy.problems import Problem, Severity
from policyengine.policy.yaml_lines import LineDict, line_at, load_yaml


@dataclass
class Findings:
    """Collects problems from every stage of loading."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, file: str, line: int | None, message: str, severity: Severity = "error") -> None:
        self.problems.append(Problem(file, line, message, severity))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


@dataclass
class SourceFile:
    """A policy file: `raw` is the parsed YAML, `model` the validated content (None if unusable)."""

    name: str  # "clusters"
    display: str  # "policies/clusters.yaml", as used in problems
    raw: LineDict
    model: BaseModel | None = None
    present: bool = True
    kept: dict[str, list[int]] = field(default_factory=dict)  # list field -> raw index of each model item

    def line(self, *path: Any) -> int | None:
        """The line of a raw path such as ("clusters", 3, "region")."""
        return line_at(self.raw, path)

    def item_line(self, key: str, index: int, *rest: Any) -> int | None:
        """The line of model item `index` of list field `key` (or of its sub-path `rest`)."""
        raw_index = self.kept.get(key, [])[index] if key in self.kept else index
        return line_at(self.raw, (key, raw_index, *rest))

    def raw_names(self, key: str, name_key: str) -> set[str]:
        """Names given by the raw items of a list field, valid or not (to avoid cascading errors)."""
        items = self.raw.get(key)
        if not isinstance(items, list):
            return set()
        return {str(item[name_key]) for item in items if isinstance(item, dict) and name_key in item}


def read_source(
    directory: Path, name: str, model_cls: type[BaseModel], required: bool, findings: Findings
) -> SourceFile:
    """Read, parse and validate `<directory>/<name>.yaml`, adding every problem to `findings`."""
    path = directory / f"{name}.yaml"
    display = str(path)
    empty = LineDict()
    empty.line, empty.key_lines = 1, {}
    if not path.is_file():
        source = SourceFile(name, display, empty, present=False)
        if required:
            findings.add(
                display, None, f"missing: {name}.yaml is required (create it; see docs/policy-repo.md)"
            )
        else:
            source.model = _validate_quietly(model_cls, {})
        return source
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        findings.add(display, None, f"cannot read the file: {exc} (save it as UTF-8 text)")
        return SourceFile(name, display, empty)
    data, issues = load_yaml(text)
    for issue in issues:
        findings.add(display, issue.line, issue.message)
    if issues and data is None:
        return SourceFile(name, display, empty)
    if data is None:
        data = empty
    if not isinstance(data, LineDict):
        allowed = ", ".join(model_cls.model_fields)
        findings.add(
            display,
            getattr(data, "line", 1),
            f"expected a mapping with the keys {allowed} at the top (see docs/policy-repo.md)",
        )
        return SourceFile(name, display, empty)
    source = SourceFile(name, display, data)
    try:
        source.model = model_cls.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            findings.add(display, line_at(data, loc), describe_error(model_cls, error))
        source.model, source.kept = _salvage(model_cls, data)
    return source


def _validate_quietly(model_cls: type[BaseModel], data: Any) -> BaseModel | None:
    try:
        return model_cls.model_validate(data)
    except ValidationError:
        return None


def _item_ok(adapter: TypeAdapter[Any], value: Any) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def _salvage(model_cls: type[BaseModel], raw: LineDict) -> tuple[BaseModel | None, dict[str, list[int]]]:
    """Rebuild the file model from the items that are valid on their own (None if that fails too)."""
    cleaned: dict[str, Any] = {}
    kept: dict[str, list[int]] = {}
    for key, value in raw.items():
        info = model_cls.model_fields.get(key) if isinstance(key, str) else None
        if info is None:
            continue
        origin = get_origin(info.annotation)
        if origin is list and isinstance(value, list):
            adapter: TypeAdapter[Any] = TypeAdapter(get_args(info.annotation)[0])
            kept[key] = [i for i, item in enumerate(value) if _item_ok(adapter, item)]
            cleaned[key] = [value[i] for i in kept[key]]
        elif origin is dict and isinstance(value, dict):
            adapter = TypeAdapter(get_args(info.annotation)[1])
            cleaned[key] = {k: v for k, v in value.items() if isinstance(k, str) and _item_ok(adapter, v)}
        else:
            cleaned[key] = value
    model = _validate_quietly(model_cls, cleaned)
    if model is None:  # a bad top-level scalar: fall back to defaults where there are any
        for key in list(cleaned):
            info = model_cls.model_fields[key]
            if not info.is_required() and not _item_ok(TypeAdapter(cast(Any, info.annotation)), cleaned[key]):
                del cleaned[key]
        model = _validate_quietly(model_cls, cleaned)
    return model, kept


def _where(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the file"


def _model_at(model_cls: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class that holds the last element of `loc` (for listing allowed keys)."""
    current: Any = model_cls
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            if get_origin(current) is dict:  # a dict key: step into the value type
                current = get_args(current)[1]
                continue
            return None
        fields = {(info.alias or name): info for name, info in current.model_fields.items()}
        if part not in fields:
            return None
        current = _unwrap(fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """list[X] -> X, X | None -> X (dicts are kept: their keys are part of the location)."""
    while True:
        origin = get_origin(annotation)
        args = [a for a in get_args(annotation) if a is not type(None)]
        if (origin is list and args) or (origin is not None and origin is not dict and len(args) == 1):
            annotation = args[0]
        else:
            return annotation


def describe_error(model_cls: type[BaseModel], error: Any) -> str:
    """A pydantic error as one actionable sentence."""
    loc = tuple(error["loc"])
    kind = error["type"]
    where = _where(loc)
    if kind == "extra_forbidden":
        holder = _model_at(model_cls, loc[:-1])
        allowed = ""
        if holder is not None:
            names = [info.alias or name for name, info in holder.model_fields.items()]
            allowed = f"; allowed: {', '.join(names)}"
        parent = _where(loc[:-1])
        return f"unknown key {loc[-1]!r} in {parent} (fix the spelling or remove it{allowed})"
    if kind == "missing":
        return f"{where}: missing required key {loc[-1]!r} (add it)"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{where}: unknown value {error.get('input')!r} (use one of {expected})"
    if kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        return f"{where}: {message}"
    return f"{where}: {error['msg']} (got {error.get('input')!r})"
