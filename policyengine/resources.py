"""The files policyengine ships inside its package: the Rego rule library, the default policy repo and
the audit schema's Alembic migrations.

They are package data, read through `importlib.resources`, so an installed wheel or image finds them
with no source tree beside it. `LIBRARY_MODULES` names every module of the rule library: loading a
policy checks the library against it, so a library that lost a module is an error naming it, never a
silently smaller engine.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# Every module of the bundled rule library (`policyengine/rules/`), tests included. A test keeps this
# list equal to the directory in the source tree; add a new module here when you add it there.
LIBRARY_MODULES: tuple[str, ...] = (
    "ccpa.rego",
    "ccpa_test.rego",
    "decision.rego",
    "decision_test.rego",
    "explain.rego",
    "gdpr.rego",
    "gdpr_test.rego",
    "lib.rego",
    "pipl.rego",
    "pipl_test.rego",
    "support_test.rego",
)


def _package_dir(name: str) -> Path:
    # A wheel installs unpacked, so the package's files are real files on disk; a zipped install
    # (zipimport) has no directory to hand the Rego engine or Alembic, and is refused with a reason.
    located = resources.files("policyengine") / name
    if not isinstance(located, Path):
        raise RuntimeError(
            f"policyengine's {name}/ is inside an archive ({located}); install policyengine unpacked (pip install)"
        )
    return located


def rule_library() -> Path:
    """The bundled Rego rule library (`policyengine/rules/`)."""
    return _package_dir("rules")


def default_policies() -> Path:
    """The default policy repo (`policyengine/policies/`): the example cluster set and the law as data."""
    return _package_dir("policies")


def migrations() -> Path:
    """The Alembic migrations of the audit schema (`policyengine/migrations/`)."""
    return _package_dir("migrations")
