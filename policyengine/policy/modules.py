"""Rego modules of a policy: the bundled rule library plus the policy repo's own `rego/` directory."""

from __future__ import annotations

from pathlib import Path

from policyengine.policy.source import Findings

BUNDLED_REGO = Path(__file__).resolve().parents[2] / "rego"


def read_modules(directory: Path, bundled: Path | None, findings: Findings) -> dict[str, str]:
    """Every `*.rego` (tests included) keyed `rego/x.rego` (bundled) or `<repo>/rego/x.rego` (the repo's own).

    A missing directory contributes nothing; an unreadable file or a key clash is an error.
    """
    modules: dict[str, str] = {}
    roots: list[tuple[Path, str]] = []
    if bundled is not None:
        roots.append((bundled, "rego"))
    roots.append((directory / "rego", f"{directory.name or directory.resolve().name}/rego"))
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
