"""The upstream report CRD schemas (tests/fixtures/reports) and a check of a report against them.

`problems(report)` validates with `jsonschema` as the API server validates a custom resource against its
structural schema, and also names every field the schema does not declare: the API server would prune
it silently (or refuse it under `kubectl apply --validate=strict`), so a field we rely on must be there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reports"
SCHEMA_FILES = {
    "wgpolicyk8s.io/v1alpha2": "wgpolicyk8s-policyreport-v1alpha2.yaml",
    "openreports.io/v1alpha1": "openreports-report-v1alpha1.yaml",
}


def schema_of(api: str) -> Mapping[str, Any]:
    document = yaml.safe_load((FIXTURES / SCHEMA_FILES[api]).read_text())
    schema: Mapping[str, Any] = document["schema"]
    return schema


def _undeclared(node: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    if schema.get("x-kubernetes-preserve-unknown-fields") or path == "metadata":
        return []
    out: list[str] = []
    if isinstance(node, Mapping):
        declared = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key in declared:
                out.extend(_undeclared(value, declared[key], where))
            elif isinstance(extra, Mapping):
                out.extend(_undeclared(value, extra, where))
            else:
                out.append(f"{where} is not in the schema (the API server prunes it)")
    elif isinstance(node, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(node):
            out.extend(_undeclared(item, schema["items"], f"{path}[{i}]"))
    return out


def problems(report: Mapping[str, Any]) -> list[str]:
    """What the API server would refuse or prune in `report` (empty when it accepts it whole)."""
    schema = schema_of(str(report.get("apiVersion")))
    validator = jsonschema.Draft7Validator(schema)
    found = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(report)]
    return found + _undeclared(report, schema, "")
