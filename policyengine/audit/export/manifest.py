"""The manifest written beside every export: what it covers, the chain heads it was cut from, the
SHA-256 of the file, and, with the audit signing key, an Ed25519 signature over all of it.

The signature covers the manifest's canonical JSON without its `signature` member, so neither the file
(its digest) nor any claim of the manifest (rows, heads, filters) can change without it failing.
`check_manifest` is what `policyengine audit verify-report` runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policyengine.audit.chain import format_time
from policyengine.audit.export.tabular import Span
from policyengine.audit.query import ExportFilter, Head
from policyengine.audit.signing import SigningKey, VerifyKey


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def write_manifest(
    out: Path,
    *,
    fmt: str,
    span: Span,
    flt: ExportFilter,
    heads: list[Head],
    verified: bool | None,
    database: str,
    signing_key: SigningKey | None = None,
    generator: str = "policyengine audit export",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `<out>.manifest.json` (signed with `signing_key` when given) and return its path."""
    doc: dict[str, Any] = {
        "file": out.name,
        "format": fmt,
        "sha256": file_sha256(out),
        "bytes": out.stat().st_size,
        "rows": span.rows,
        "time_range": {
            "first": format_time(span.first) if span.first else None,
            "last": format_time(span.last) if span.last else None,
        },
        "filters": flt.describe(),
        "chain_heads": [{"chain_id": h.chain_id, "seq": h.seq, "hash": h.hash} for h in heads],
        "chains_verified": verified,
        "database": database,
        "generated_at": format_time(datetime.now(UTC)),
        "generator": generator,
        **(extra or {}),
    }
    if signing_key is not None:
        doc["signature"] = {"key_id": signing_key.key_id, "value": signing_key.sign(signed_bytes(doc))}
    path = manifest_path(out)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def signed_bytes(doc: dict[str, Any]) -> bytes:
    """What the signature covers: the manifest's canonical JSON without `signature`."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class ManifestError(ValueError):
    """The file or its manifest cannot be read, or the manifest is not one: bad input (exit 2)."""


@dataclass(frozen=True, slots=True)
class ManifestCheck:
    """What `check_manifest` found: `problems` empty when the file is what the manifest says."""

    manifest: Path
    rows: int
    chain_heads: int
    key_id: str | None  # the key that signed it, None when unsigned
    signature_checked: bool
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_manifest(path: Path, keys: list[VerifyKey] | tuple[VerifyKey, ...] = ()) -> ManifestCheck:
    """Check `path` (a report or export, or its `.manifest.json`) against its manifest: the file's
    SHA-256 and size, and with `keys` the signature. Raises ManifestError for unreadable input."""
    if path.name.endswith(".manifest.json"):
        manifest, target = path, path.with_name(path.name[: -len(".manifest.json")])
    else:
        manifest, target = manifest_path(path), path
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(
            f"{manifest}: cannot read the manifest ({exc.strerror}); it is written beside the file"
        ) from None
    except ValueError as exc:
        raise ManifestError(f"{manifest}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("sha256"), str) or doc.get("file") != target.name:
        raise ManifestError(f"{manifest}: not the manifest of {target.name} (needs file and sha256)")
    try:
        actual = file_sha256(target)
        size = target.stat().st_size
    except OSError as exc:
        raise ManifestError(f"{target}: cannot read it ({exc.strerror})") from None
    problems: list[str] = []
    if actual != doc["sha256"]:
        problems.append(f"{target.name}: SHA-256 is {actual}, the manifest says {doc['sha256']}: the file was modified")
    if doc.get("bytes") is not None and doc.get("bytes") != size:
        problems.append(f"{target.name}: {size} bytes, the manifest says {doc.get('bytes')}")
    signature = doc.get("signature")
    key_id = signature.get("key_id") if isinstance(signature, dict) else None
    checked = False
    if keys:
        by_id = {k.key_id: k for k in keys}
        if not isinstance(signature, dict):
            problems.append(f"{manifest.name}: not signed, but a public key was given")
        elif key_id not in by_id:
            problems.append(f"{manifest.name}: signed by {key_id}, not by {', '.join(by_id)}")
        elif not by_id[key_id].verify(signed_bytes(doc), str(signature.get("value", ""))):
            problems.append(f"{manifest.name}: the signature does not verify: the manifest was modified")
        else:
            checked = True
    heads = doc.get("chain_heads")
    return ManifestCheck(
        manifest,
        int(doc.get("rows") or 0),
        len(heads) if isinstance(heads, list) else 0,
        key_id,
        checked,
        tuple(problems),
    )
