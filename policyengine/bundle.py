"""OPA bundles of the policy: `.manifest`, the policy data and the Rego modules in one .tar.gz.

A bundle lets OPA's own distribution carry the policy (`opa run --server --bundle bundle.tar.gz`, a
bundle service, an OCI registry). The layout, as `opa build` writes it:

```
/.manifest                         {"revision": <policy revision>, "roots": [...], "rego_version": 1}
/policyengine/policy/data.json     data.policyengine.policy (the loaded policy repo, with its revision)
/<module path>.rego                every Rego module of the policy (unit tests `*_test.rego` left out)
/policyengine_opa/envelope.rego    the rule policyengine queries (the decision with its revision)
```

The archive is reproducible: the same policy gives the same bytes (sorted entries, fixed times).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from policyengine.engine.base import DECISION_QUERY
from policyengine.engine.opa import ENVELOPE_MODULE_ID, ENVELOPE_PACKAGE, envelope_module

ROOTS = ("policyengine", ENVELOPE_PACKAGE.split(".")[0])
DATA_FILE = "policyengine/policy/data.json"
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)", re.MULTILINE)


class BundleError(Exception):
    """The policy cannot be made into a bundle; the message says which file and what to change."""


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """What was written: where, the revision OPA will report, the roots it owns, the files in it."""

    path: Path
    revision: str
    roots: tuple[str, ...]
    files: tuple[str, ...]
    size: int


def is_test_module(module_id: str) -> bool:
    return PurePosixPath(module_id).name.endswith("_test.rego")


def _bundle_path(module_id: str) -> str:
    parts = [p for p in PurePosixPath(module_id).parts if p not in ("/", ".", "..")]
    if not parts or not parts[-1].endswith(".rego"):
        raise BundleError(f"{module_id}: a Rego module's file name must end in .rego")
    return "/".join(parts)


def bundle_files(modules: Mapping[str, str], data: Mapping[str, Any]) -> dict[str, bytes]:
    """The files of the bundle, by path inside it (without the leading slash)."""
    revision = data.get("revision")
    if not isinstance(revision, str) or not revision:
        raise BundleError("the policy data has no revision; load it with policyengine.policy.load_policy")
    files: dict[str, bytes] = {}
    for module_id, source in sorted(modules.items()):
        if is_test_module(module_id):
            continue
        match = _PACKAGE.search(source)
        package = match.group(1) if match else ""
        if package.split(".")[0] not in ROOTS:
            raise BundleError(
                f"{module_id}: package {package or '(none)'} is outside the bundle roots "
                f"({', '.join(ROOTS)}): put your rules in a package under policyengine "
                "(e.g. package policyengine.custom)"
            )
        path = _bundle_path(module_id)
        if path in files or path == ENVELOPE_MODULE_ID:
            raise BundleError(f"{module_id}: two modules map to {path} in the bundle; rename one")
        files[path] = source.encode("utf-8")
    files[ENVELOPE_MODULE_ID] = envelope_module([DECISION_QUERY]).encode("utf-8")
    files[DATA_FILE] = json.dumps(data, sort_keys=True, indent=1).encode("utf-8")
    manifest = {
        "revision": revision,
        "roots": list(ROOTS),
        "rego_version": 1,
        "metadata": {"built_by": "policyengine bundle build"},
    }
    files[".manifest"] = json.dumps(manifest, sort_keys=True).encode("utf-8")
    return files


def build_bundle(modules: Mapping[str, str], data: Mapping[str, Any], out: Path) -> BundleInfo:
    """Write the bundle to `out` (a .tar.gz) and say what is in it."""
    files = bundle_files(modules, data)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content = files[name]
            info = tarfile.TarInfo("/" + name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    archive = gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(archive)
    except OSError as exc:
        raise BundleError(f"cannot write {out}: {exc.strerror or exc}") from None
    return BundleInfo(out, str(data["revision"]), ROOTS, tuple(sorted(files)), len(archive))
