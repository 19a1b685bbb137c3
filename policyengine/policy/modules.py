"""Rego modules of a policy: the bundled rule library plus the policy repo's own `rego/` directory."""

from __future__ import annotations

from pathlib import Path

from policyengine.policy.source import Findings
from policyengine.resources import LIBRARY_MODULES, rule_library

BUNDLED_REGO = rule_library()


def read_modules(directory: Path, bundled: Path | None, findings: Findings) -> dict[str, str]:
    """Every `*.rego` (tests included) keyed `rego/x.rego` (bundled) or `<repo>/rego/x.rego` (the repo's own).

    A missing repo `rego/` contributes nothing; a missing rule library, a module missing from the
    installed library (`LIBRARY_MODULES`), an unreadable file or a key clash is an error.
    """
    modules: dict[str, str] = {}
    roots: list[tuple[Path, str]] = []
    if bundled is not None:
        roots.append((bundled, "rego"))
    roots.append((directory / "rego", f"{directory.name or directory.resolve().name}/rego"))
    if bundled is not None:
        _check_library(bundled, findings)
    for root, prefix in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.rego")):
            key = f"{prefix}/{path.relative_to(root).as_posix()}"
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                findings.add(str(path), None, f"cannot read the Rego module: {exc} (save it as UTF-8 text)")
                continue
            if key in modules:
                findings.add(
                    str(path),
                    None,
                    f"Rego module {key!r} is already loaded from the bundled library (rename your module)",
                )
                continue
            modules[key] = text
    return modules


def _check_library(bundled: Path, findings: Findings) -> None:
    """The rule library is there and, when it is the installed one, holds every module it ships with."""
    if not bundled.is_dir():
        findings.add(
            str(bundled),
            None,
            "the Rego rule library is missing: nothing could decide a route "
            "(reinstall policyengine: pip install --force-reinstall policyengine)",
        )
        return
    if bundled.resolve() != BUNDLED_REGO.resolve():
        return  # a library of the caller's own (tests): no list to hold it to
    missing = [name for name in LIBRARY_MODULES if not (bundled / name).is_file()]
    if missing:
        findings.add(
            str(bundled),
            None,
            f"the installed Rego rule library lacks {', '.join(missing)} "
            f"({len(LIBRARY_MODULES) - len(missing)} of {len(LIBRARY_MODULES)} modules present): "
            "reinstall policyengine (pip install --force-reinstall policyengine)",
        )
