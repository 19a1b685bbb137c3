"""`load_policy(dir)`: read every policy file, check it, and compile what Rego and Python callers use.

All problems are collected before anything is raised, so one run shows every error with its
file:line. Warnings (expired mechanisms or adequacy, stale as_of) do not stop loading.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, cast

from policyengine.policy.classification import Classifier
from policyengine.policy.compiled import compile_data
from policyengine.policy.loaded import LoadedPolicy
from policyengine.policy.models import (
    FILE_MODELS,
    REQUIRED_FILES,
    ClassificationsFile,
    ClustersFile,
    EnforcementFile,
    EntitiesFile,
    RegimesFile,
    RegionsFile,
    ServicesFile,
    TransfersFile,
)
from policyengine.policy.modules import BUNDLED_REGO, read_modules
from policyengine.policy.problems import PolicyError, Problem
from policyengine.policy.references import check_references
from policyengine.policy.revision import policy_revision
from policyengine.policy.source import Findings, SourceFile, read_source
from policyengine.policy.yaml_lines import plain


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Errors before warnings, each in file and line order (stable for equal places)."""
    return sorted(problems, key=lambda p: (p.severity != "error", p.file, p.line or 0))


def check_policy(
    directory: Path, *, today: dt.date | None = None, bundled_rego: Path | None = BUNDLED_REGO
) -> tuple[LoadedPolicy | None, list[Problem]]:
    """Load and check without raising: (the policy or None when there are errors, every problem)."""
    directory = Path(directory)
    today = today or dt.date.today()
    findings = Findings()
    if not directory.is_dir():
        findings.add(
            str(directory),
            None,
            "policy directory not found (pass the directory that holds "
            "regimes.yaml, clusters.yaml and regions.yaml)",
        )
        return None, findings.problems
    files: dict[str, SourceFile] = {
        name: read_source(directory, name, model, name in REQUIRED_FILES, findings)
        for name, model in FILE_MODELS.items()
    }
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        if path.stem not in FILE_MODELS or path.suffix == ".yml":
            findings.add(
                str(path),
                None,
                f"{path.name} is not a policy file and is ignored (known files: "
                f"{', '.join(f + '.yaml' for f in FILE_MODELS)})",
                "warning",
            )
    geography = check_references(files, findings, today)
    modules = read_modules(directory, bundled_rego, findings)
    if findings.errors or any(f.model is None for f in files.values()):
        return None, _ordered(findings.problems)

    def model(name: str) -> Any:
        return files[name].model

    revision = policy_revision({name: plain(f.raw) for name, f in files.items() if f.present}, modules)
    regimes = cast(RegimesFile, model("regimes"))
    data = compile_data(
        revision=revision,
        geography=geography,
        regions=cast(RegionsFile, model("regions")),
        entities=cast(EntitiesFile, model("entities")),
        clusters=cast(ClustersFile, model("clusters")),
        regimes=regimes,
        services=cast(ServicesFile, model("services")),
        transfers=cast(TransfersFile, model("transfers")),
        enforcement=cast(EnforcementFile, model("enforcement")),
    )
    classifier = Classifier(
        cast(ClassificationsFile, model("classifications")).classifications, regimes.regimes, geography
    )
    warnings = _ordered(findings.warnings)
    return LoadedPolicy.build(directory, revision, data, modules, warnings, classifier), warnings


def load_policy(
    directory: Path, *, today: dt.date | None = None, bundled_rego: Path | None = BUNDLED_REGO
) -> LoadedPolicy:
    """Load the policy repo at `directory`; raises PolicyError listing every problem when any is an error.

    `today` dates the expiry checks (default: the current date); `bundled_rego` is the Rego library
    loaded with the repo's own `rego/` (None loads only the repo's own modules).
    """
    policy, problems = check_policy(directory, today=today, bundled_rego=bundled_rego)
    if policy is None:
        raise PolicyError(problems)
    return policy
