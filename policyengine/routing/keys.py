"""What decides a routing answer, and whether the loaded modules read only that.

The rules judge a route from what its input and the policy data say. For the filter's routes the source
end is always the cluster the filter runs in, so an answer is decided by:

- the data profile of each end (regimes, classes, subjects, origin, PIPL volumes and CIIO);
- the destination cluster judged (the preferred one of the service: its jurisdiction, region and entity
  come from the policy by name);
- the transfers recorded for the destination service (`index.transfers[service]`);
- the enforcement its namespace gets, per regime (`index.enforcement`);
- the opt-out, where it can matter: only when CCPA data moves (the bundled rules read `input.opt_out`
  only in `policyengine.ccpa`);
- the decision date (`reads_only_the_date`).

Routes with equal keys get the same decision, up to the destination service's name in the messages:
a keyed evaluation names a placeholder service (`placeholder_service`), replaced by the real name for
each pair. `coverage(modules)` checks statically that every module the bundled library does not ship
reads nothing else of the input (its service, namespace, workloads, `via`, or the whole input); when one
does, the table judges each pair on its own (`Coverage.keyed` false), exact as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from policyengine.decision_cache import reads_only_the_date
from policyengine.resources import LIBRARY_MODULES, rule_library

# A service name no policy can hold (a control character is not a DNS label nor a namespace).
PLACEHOLDER_NAME = "\x1ekeyed-service\x1e"

_COMMENT = re.compile(r"#[^\n]*")
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)", re.MULTILINE)
_END_FIELDS = r"(cluster|region|jurisdiction|entity|regimes|data_classes|subjects|origin|pipl)\b"
# References to the input that the key covers: an end's placement or data, the opt-out, the date.
_COVERED = (
    re.compile(r"\binput\.route\.(source|destination)\." + _END_FIELDS),
    re.compile(r"\binput\.opt_out\b"),
    re.compile(r"\bsubstring\(input\.time, 0, 10\)"),
    re.compile(r"\bdata\.policyengine\.lib\.route\.(source|destination)\." + _END_FIELDS),
)
_INPUT = re.compile(r"\binput\b")
_LIB_ROUTE = re.compile(r"\bdata\.policyengine\.lib\.(route|service)\b")
_NAMESPACE_RULE = re.compile(r"\bdata\.policyengine\.namespace\b")
_IMPORT = re.compile(r"^\s*import\s+(input|data\.policyengine\.lib)\b", re.MULTILINE)
# Inside the bundled packages a module may name their rules without the `data.` prefix.
_BARE_IN_PACKAGE = {
    "policyengine.lib": re.compile(r"(?<![\w.])(route|service)\b"),
    "policyengine": re.compile(r"(?<![\w.])(namespace)\b"),
}
_OPT_OUT = re.compile(r"\bopt_out\b")


@dataclass(frozen=True, slots=True)
class Coverage:
    """Whether answers may be shared by key, and whether the opt-out matters beyond CCPA data."""

    keyed: bool
    reason: str = ""  # why not, naming the module
    opt_out_everywhere: bool = False  # a custom module reads the opt-out: it is part of every key


@cache
def _library() -> dict[str, str]:
    root = rule_library()
    return {f"rego/{name}": (root / name).read_text(encoding="utf-8") for name in LIBRARY_MODULES}


def custom_modules(modules: Mapping[str, str]) -> dict[str, str]:
    """The modules the bundled rule library does not ship as they are (a repo's own, or edited ones)."""
    library = _library()
    return {path: text for path, text in modules.items() if library.get(path) != text}


def uncovered_read(path: str, source: str) -> str | None:
    """What of the input a module reads that the key does not cover, or None."""
    text = _COMMENT.sub("", source)
    if (found := _IMPORT.search(text)) is not None:
        return f"{path} imports {found.group(1)} (an alias the check cannot follow)"
    stripped = text
    for pattern in _COVERED:
        stripped = pattern.sub("", stripped)
    if _INPUT.search(stripped):
        return f"{path} reads input beyond the ends' placement and data, the opt-out and the date"
    if (found := _LIB_ROUTE.search(stripped)) is not None:
        return f"{path} reads {found.group(0)}"
    if _NAMESPACE_RULE.search(stripped):
        return f"{path} reads data.policyengine.namespace"
    package = _PACKAGE.search(text)
    bare = _BARE_IN_PACKAGE.get(package.group(1)) if package else None
    if bare is not None and (found := bare.search(stripped)) is not None:
        return f"{path} reads {found.group(1)} of package {package.group(1) if package else ''}"
    return None


def coverage(modules: Mapping[str, str]) -> Coverage:
    """Check the serving modules: keyed when each custom one reads only what the key covers."""
    if not reads_only_the_date(modules):
        return Coverage(keyed=False, reason="a module reads the decision time beyond its date")
    custom = custom_modules(modules)
    for path, source in sorted(custom.items()):
        problem = uncovered_read(path, source)
        if problem is not None:
            return Coverage(keyed=False, reason=problem)
    everywhere = any(_OPT_OUT.search(_COMMENT.sub("", s)) for s in custom.values())
    return Coverage(keyed=True, opt_out_everywhere=everywhere)


def enforcement_class(index: Mapping[str, Any], default: str, namespace: str) -> tuple[str, ...]:
    """The action every regime of `index.enforcement` takes in `namespace`, as decision.rego finds it:
    the exact entry, else the first prefix rule that matches, else the repo default."""
    actions: list[str] = []
    for regime in sorted(index):
        rules = index[regime]
        found = (rules.get("exact") or {}).get(namespace)
        if found is None:
            found = next((a for p, a in rules.get("prefixes") or () if namespace.startswith(p)), None)
        actions.append(found if found is not None else default)
    return tuple(actions)


def placeholder_service(namespace: str) -> str:
    """The service a keyed evaluation names: a real namespace (its enforcement), no real name."""
    return f"{namespace}/{PLACEHOLDER_NAME}"
