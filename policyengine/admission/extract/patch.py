"""Building RFC 6902 operations: JSON pointers with `~0`/`~1` escapes, and label/annotation edits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policyengine.admission.extract.crossing import JsonPatch


def pointer(*parts: str | int) -> str:
    """A JSON pointer from path parts, escaping `~` as `~0` and `/` as `~1` (RFC 6901)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def set_metadata_entries(manifest: Mapping[str, Any], key: str, entries: Mapping[str, str]) -> JsonPatch:
    """Set `metadata.<key>[k] = v` for each entry, adding the map first when it is missing."""
    meta = manifest.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    current = meta.get(key)
    if not isinstance(current, Mapping):
        if not entries:
            return []
        return [{"op": "add", "path": pointer("metadata", key), "value": dict(entries)}]
    ops: JsonPatch = []
    for k, v in entries.items():
        if k in current:
            if current[k] != v:
                ops.append({"op": "replace", "path": pointer("metadata", key, k), "value": v})
        else:
            ops.append({"op": "add", "path": pointer("metadata", key, k), "value": v})
    return ops


def remove_metadata_entries(manifest: Mapping[str, Any], key: str, names: list[str]) -> JsonPatch:
    """Remove `metadata.<key>[k]` for each present name."""
    meta = manifest.get("metadata")
    current = meta.get(key) if isinstance(meta, Mapping) else None
    if not isinstance(current, Mapping):
        return []
    return [{"op": "remove", "path": pointer("metadata", key, k)} for k in names if k in current]
