"""Reading manifest fields by JSON path, with a `ManifestError` that names the path when the shape is wrong.

Extractors read only through these functions, so a manifest such as `spec.targets: "eu-2"` is reported
as "GlobalTrafficPolicy shop/checkout: spec.targets must be a list, got a string (...)" rather than
as a Python exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ManifestError(ValueError):
    """A manifest whose shape does not match its kind: what, where (JSON path), and what to do."""

    def __init__(self, obj: str, path: str, message: str, remedy: str = "") -> None:
        self.obj = obj
        self.path = path
        self.message = message
        self.remedy = remedy or "fix the field to match the resource's schema and apply again"
        super().__init__(f"{obj}: {path}: {message} ({self.remedy})")


_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", bool: "a boolean"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


def describe(manifest: Mapping[str, Any]) -> str:
    """ "Kind namespace/name" of a manifest, for messages."""
    meta = manifest.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    ns = meta.get("namespace") or "default"
    return f"{manifest.get('kind', '?')} {ns}/{meta.get('name', '?')}"


def group_of(manifest: Mapping[str, Any]) -> str:
    """The API group of `apiVersion` ("" for the core group)."""
    api_version = str(manifest.get("apiVersion", ""))
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def namespace_of(manifest: Mapping[str, Any]) -> str:
    """metadata.namespace, "default" when unset."""
    meta = manifest.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("namespace"), str) and meta["namespace"]:
        return str(meta["namespace"])
    return "default"


def name_of(manifest: Mapping[str, Any]) -> str:
    """metadata.name; a ManifestError when missing."""
    meta = manifest.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ManifestError(describe(manifest), "metadata.name", "is missing", "give the object a name")
    return name


def optional_map(manifest: Mapping[str, Any], value: Any, path: str) -> Mapping[str, Any]:
    """A mapping at `path`, {} when absent or null."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ManifestError(describe(manifest), path, f"must be a mapping, got {_type_name(value)}")
    return value


def optional_list(manifest: Mapping[str, Any], value: Any, path: str) -> list[Any]:
    """A list at `path`, [] when absent or null."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(describe(manifest), path, f"must be a list, got {_type_name(value)}")
    return value


def optional_str(manifest: Mapping[str, Any], value: Any, path: str) -> str | None:
    """A string at `path`, None when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ManifestError(describe(manifest), path, f"must be a string, got {_type_name(value)}")
    return value


def required_str(manifest: Mapping[str, Any], value: Any, path: str) -> str:
    """A non-empty string at `path`."""
    text = optional_str(manifest, value, path)
    if not text:
        raise ManifestError(describe(manifest), path, "is required")
    return text


def spec_of(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """The manifest's `spec` ({} when absent)."""
    return optional_map(manifest, manifest.get("spec"), "spec")


def metadata_map(manifest: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """metadata.labels or metadata.annotations ({} when absent)."""
    meta = optional_map(manifest, manifest.get("metadata"), "metadata")
    return optional_map(manifest, meta.get(key), f"metadata.{key}")
