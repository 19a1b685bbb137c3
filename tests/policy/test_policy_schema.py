"""The JSON Schema of the policy files is valid and accepts the default repo (checked with jsonschema)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from policy_fixtures import DEFAULT_REPO

from policyengine.policy.models import FILE_MODELS
from policyengine.policy.schema import combined_schema, file_schema
from policyengine.policy.yaml_lines import load_yaml, plain


def _document(path: Path) -> object:
    data, issues = load_yaml(path.read_text(encoding="utf-8"))
    assert issues == []
    return plain(data)


def test_combined_schema_is_valid_and_has_one_definition_per_file() -> None:
    schema = combined_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(FILE_MODELS) <= set(schema["$defs"])


@pytest.mark.parametrize("name", sorted(FILE_MODELS))
def test_default_files_validate(name: str) -> None:
    document = _document(DEFAULT_REPO / f"{name}.yaml")
    schema = file_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    jsonschema.validate(document, combined_schema(), cls=jsonschema.Draft202012Validator)
    ref = {"$ref": f"#/$defs/{name}", "$defs": combined_schema()["$defs"]}
    jsonschema.validate(document, ref, cls=jsonschema.Draft202012Validator)


def test_schema_rejects_unknown_keys_and_values() -> None:
    schema = file_schema("clusters")
    bad = {"clusters": [{"name": "x", "region": "aws/us-east-1", "entity": "acme", "regon": "typo"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft202012Validator)
    enforcement = file_schema("enforcement")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"default": "block"}, enforcement, cls=jsonschema.Draft202012Validator)
    entities = file_schema("entities")
    jsonschema.validate(
        {"entities": [{"name": "a", "self": True}]}, entities, cls=jsonschema.Draft202012Validator
    )
