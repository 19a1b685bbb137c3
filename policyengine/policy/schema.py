"""JSON Schema of the policy files, for editors (yaml-language-server) and CI checks.

`file_schema("clusters")` is the schema of clusters.yaml; `combined_schema()` holds every file's schema
under `$defs` (named after the file) and accepts a document that is any one of them.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from policyengine.policy.models import FILE_MODELS

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def file_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of `<name>.yaml`. Raises KeyError for a name that is not a policy file."""
    model = FILE_MODELS[name]
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": DRAFT, **schema, "$id": f"policyengine:policy/{name}.yaml", "title": f"{name}.yaml"}


def combined_schema() -> dict[str, Any]:
    """One schema with a definition per file (`#/$defs/clusters`, ...); a document must match one."""
    _, top = models_json_schema(
        [(model, "validation") for model in FILE_MODELS.values()],
        by_alias=True,
        ref_template="#/$defs/{model}",
    )
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    for name, model in FILE_MODELS.items():
        defs[name] = {"$ref": f"#/$defs/{model.__name__}", "title": f"{name}.yaml"}
    return {
        "$schema": DRAFT,
        "$id": "policyengine:policy",
        "title": "policyengine policy repo file",
        "description": "Any one file of a policyengine policy repo; see $defs/<file> for each file.",
        "$defs": defs,
        "anyOf": [{"$ref": f"#/$defs/{name}"} for name in FILE_MODELS],
    }
