"""OPA bundles of the policy: `.manifest`, the policy data and the Rego modules in one .tar.gz.

A bundle lets OPA's own distribution carry the policy (`opa run --server --bundle bundle.tar.gz`, a
bundle service, an OCI registry). The layout, as `opa build` writes it:

```
/.manifest                         {"revision": <policy revision>, "roots": [...], "rego_version": 1}
/policyengine/policy/data.json     data.policyengine.policy (the loaded policy repo, with its revision)
/<module path>.rego                every Rego module of the policy (unit tests `*_test.rego` left out)
/policyengine_opa/envelope.rego    the rule policyengine queries (the decision with its revision)
/<repo>/*.yaml, /<repo>/rego/...   the policy repo itself (its data files and its own Rego, tests too)
```

OPA reads the data, the modules and the manifest, and ignores the repo's YAML files. policyengine
serving from a bundle (`serve --policy-bundle-url`) reads the repo back out of it (`unpack_bundle`),
loads it with the installed rule library and serves it only when the revision it computes equals the
manifest's: a bundle built by another policyengine (another rule library) or altered after the build
is refused with the reason. The repo's own test modules travel too (the revision covers them); OPA
loads them as ordinary rules. The archive is reproducible: the same policy gives the same bytes.
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
from policyengine.policy.models import FILE_MODELS

ROOTS = ("policyengine", ENVELOPE_PACKAGE.split(".")[0])
DATA_FILE = "policyengine/policy/data.json"
MANIFEST = ".manifest"
REPO_METADATA = "policy_repo"  # .manifest metadata: the directory of the policy repo inside the bundle
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_FILES = 10_000
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)", re.MULTILINE)
_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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


def repo_name(directory: Path) -> str:
    """The policy repo's directory name, as its own modules are keyed (`<name>/rego/x.rego`)."""
    return directory.name or directory.resolve().name


def repo_files(directory: Path) -> dict[str, bytes]:
    """The files `load_policy` reads from a policy repo, by path under `<name>/`."""
    name = repo_name(directory)
    files: dict[str, bytes] = {}
    try:
        for stem in FILE_MODELS:
            path = directory / f"{stem}.yaml"
            if path.is_file():
                files[f"{name}/{stem}.yaml"] = path.read_bytes()
        rego = directory / "rego"
        if rego.is_dir():
            for path in sorted(rego.rglob("*.rego")):
                files[f"{name}/rego/{path.relative_to(rego).as_posix()}"] = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read the policy repo {directory}: {exc.strerror or exc}") from None
    return files


def bundle_files(
    modules: Mapping[str, str], data: Mapping[str, Any], repo: Path | None = None
) -> dict[str, bytes]:
    """The files of the bundle, by path inside it (without the leading slash).

    With `repo` (the policy repo directory) the bundle also carries the repo itself, so that
    policyengine can serve from it (`unpack_bundle`).
    """
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
    metadata = {"built_by": "policyengine bundle build"}
    if repo is not None:
        name = repo_name(repo)
        if not _REPO_NAME.match(name) or name in ROOTS or name == "rego":
            raise BundleError(f"{repo}: the policy repo directory name {name!r} cannot name a bundle directory")
        for path, content in repo_files(repo).items():
            if files.setdefault(path, content) != content:
                raise BundleError(f"{path}: two files map to this path in the bundle; rename one")
        metadata[REPO_METADATA] = name
    manifest = {"revision": revision, "roots": list(ROOTS), "rego_version": 1, "metadata": metadata}
    files[MANIFEST] = json.dumps(manifest, sort_keys=True).encode("utf-8")
    return files


def build_bundle(
    modules: Mapping[str, str], data: Mapping[str, Any], out: Path, repo: Path | None = None
) -> BundleInfo:
    """Write the bundle to `out` (a .tar.gz) and say what is in it (`repo`: see `bundle_files`)."""
    files = bundle_files(modules, data, repo)
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


@dataclass(frozen=True, slots=True)
class UnpackedBundle:
    """A bundle's policy repo written out for `load_policy`, and the revision its manifest claims."""

    directory: Path
    revision: str


def _unzipped(archive: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(archive)) as stream:
            raw = stream.read(MAX_UNPACKED_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise BundleError(f"not a readable bundle (a .tar.gz): {exc}") from None
    if len(raw) > MAX_UNPACKED_BYTES:
        raise BundleError(f"the bundle unpacks to more than {MAX_UNPACKED_BYTES} bytes")
    return raw


def _members(archive: bytes) -> dict[str, bytes]:
    """Every regular file of the archive by its normalised path; links, devices and `..` refused."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(_unzipped(archive)), mode="r:") as tar:
            for member in tar:
                name = member.name.lstrip("/").removeprefix("./")
                if member.isdir():
                    continue
                if not member.isfile():
                    raise BundleError(f"{member.name}: a bundle holds regular files only (no links or devices)")
                parts = PurePosixPath(name).parts
                if not parts or ".." in parts:
                    raise BundleError(f"{member.name}: a path outside the bundle")
                if len(files) >= MAX_FILES:
                    raise BundleError(f"the bundle has more than {MAX_FILES} files")
                handle = tar.extractfile(member)
                files["/".join(parts)] = handle.read() if handle is not None else b""
    except tarfile.TarError as exc:
        raise BundleError(f"not a readable bundle (a .tar.gz): {exc}") from None
    return files


def unpack_bundle(archive: bytes, into: Path) -> UnpackedBundle:
    """Write the policy repo of a bundle (as `build_bundle` makes it with a repo) under `into`.

    Raises BundleError naming what is wrong: not a .tar.gz, no or bad `.manifest`, no policy repo in
    it (built without one, or by another tool), an unsafe path. The revision is only the manifest's
    claim: load the directory and compare.
    """
    files = _members(archive)
    if MANIFEST not in files:
        raise BundleError("the bundle has no .manifest (build it with policyengine bundle build)")
    try:
        manifest = json.loads(files[MANIFEST])
    except ValueError as exc:
        raise BundleError(f".manifest is not JSON: {exc}") from None
    revision = manifest.get("revision") if isinstance(manifest, dict) else None
    if not isinstance(revision, str) or not revision:
        raise BundleError(".manifest has no revision (build the bundle with policyengine bundle build)")
    metadata = manifest.get("metadata")
    name = metadata.get(REPO_METADATA) if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not _REPO_NAME.match(name):
        raise BundleError(
            f".manifest names no policy repo (metadata.{REPO_METADATA}): the bundle holds no policy repo to "
            "serve; build it with policyengine bundle build of this version"
        )
    directory = into / name
    written = 0
    try:
        for path, content in sorted(files.items()):
            if not path.startswith(name + "/"):
                continue
            relative = PurePosixPath(path[len(name) + 1 :])
            in_rego = relative.parts[0] == "rego" and relative.suffix == ".rego"
            if not in_rego and (len(relative.parts) != 1 or relative.suffix != ".yaml"):
                continue  # nothing load_policy would read
            target = directory.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written += 1
    except OSError as exc:
        raise BundleError(f"cannot write the bundle's policy repo under {into}: {exc.strerror or exc}") from None
    if not written:
        raise BundleError(f"the bundle has no files under {name}/ (its policy repo)")
    return UnpackedBundle(directory, revision)
