"""The policy revision: a content hash of the data files' parsed content and every Rego module's text.

The encoding is canonical JSON (sorted keys, no whitespace, UTF-8), so the revision is the same on
every run and machine, ignores YAML comments and formatting, and changes when any value or module does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(value: Any) -> bytes:
    """The one byte encoding of a JSON value that the revision and digests hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def policy_revision(files: Mapping[str, Any], modules: Mapping[str, str]) -> str:
    """`sha256:<hex>` over {"files": {name: parsed content}, "modules": {path: text}}."""
    digest = hashlib.sha256(canonical_json({"files": dict(files), "modules": dict(modules)}))
    return f"sha256:{digest.hexdigest()}"
