"""Renderers of `policyengine check` results: text (rich), JSON, SARIF 2.1.0, JUnit XML."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from rich.console import Console

from policyengine import __version__
from policyengine.decision import Decision, Outcome

FORMATS = ("text", "json", "sarif", "junit")


@dataclass(frozen=True, slots=True)
class CheckSummary:
    """What the run read besides the decided objects: every object read, and the files skipped."""

    read: int = 0
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One object of one file, and its decision. `namespace` is the namespace it was decided in;
    `namespace_from` says where that came from: the object, `--namespace`, or `default`."""

    file: str
    api_version: str
    kind: str
    namespace: str
    name: str
    decision: Decision
    line: int = 1
    namespace_from: str = "object"

    @property
    def routes(self) -> int:
        """How many cross-cluster routes the object creates."""
        return len(self.decision.extra.get("routes", ()))

    @property
    def notes(self) -> list[str]:
        return list(self.decision.extra.get("notes", ()))

    @property
    def resource(self) -> str:
        scope = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {scope}{self.name}"

    def to_json(self) -> dict[str, Any]:
        d = self.decision
        return {
            "file": self.file,
            "resource": {
                "apiVersion": self.api_version,
                "kind": self.kind,
                "namespace": self.namespace,
                "name": self.name,
            },
            "namespace_from": self.namespace_from,
            "routes": self.routes,
            "notes": self.notes,
            "decision": d.outcome.value,
            "enforcement": d.enforcement.value,
            "decision_id": d.decision_id,
            "regimes": list(d.regimes),
            "violations": [v.to_dict() for v in d.violations],
            "permitted_clusters": list(d.permitted_clusters),
            "patch": list(d.patch),
            "warnings": list(d.warnings),
        }


def _counts(results: list[CheckResult], summary: CheckSummary) -> dict[str, int]:
    routed = [r for r in results if r.routes]
    return {
        "read": summary.read,
        "decided": len(results),
        "with_routes": len(routed),
        "allowed": sum(1 for r in routed if r.decision.outcome is Outcome.ALLOW),
        "rewritten": sum(1 for r in routed if r.decision.outcome is Outcome.REWRITE),
        "denied": sum(1 for r in routed if r.decision.outcome is Outcome.DENY),
        "enforced": sum(1 for r in results if r.decision.enforced),
        "skipped": len(summary.skipped),
    }


def render_json(results: list[CheckResult], revision: str, summary: CheckSummary | None = None) -> str:
    summary = summary or CheckSummary(read=len(results))
    doc = {
        "policy_revision": revision,
        "summary": _counts(results, summary),
        "skipped": list(summary.skipped),
        "results": [r.to_json() for r in results],
    }
    return json.dumps(doc, indent=2)


_STYLE = {Outcome.ALLOW: "green", Outcome.DENY: "red", Outcome.REWRITE: "yellow"}


def _namespace_note(r: CheckResult) -> str:
    if r.namespace_from == "default":
        return f"  [magenta](no namespace: decided in {r.namespace}; pass -n NAMESPACE)[/]"
    if r.namespace_from == "--namespace":
        return f"  (namespace {r.namespace} from -n)"
    return ""


def render_text(
    results: list[CheckResult], revision: str, console: Console, summary: CheckSummary | None = None
) -> None:
    """One line per object with a route or a note (like conftest), then its violations with article,
    message and remedy; then what was read, decided and skipped."""
    summary = summary or CheckSummary(read=len(results))
    for r in results:
        if not r.routes and not r.notes:
            continue
        d = r.decision
        style = _STYLE[d.outcome] if d.enforced or d.outcome is not Outcome.DENY else "magenta"
        label = d.outcome.value.upper() if d.enforced or d.outcome is not Outcome.DENY else d.enforcement.value.upper()
        where = f"{r.file}:{r.line}" if r.line > 0 else r.file  # line 0: a live object (scan), no file
        head = f"[bold {style}]{label:<8}[/] {where}  {r.resource}{_namespace_note(r)}"
        if d.outcome is Outcome.REWRITE:
            head += f"  [yellow]→ keeps {', '.join(d.permitted_clusters)}[/]"
        console.print(head, soft_wrap=True)
        for v in d.violations:
            console.print(f"         [bold]{v.regime} {v.rule}[/] ({v.article}): {v.message}", soft_wrap=True)
            console.print(f"           [italic]remedy:[/] {v.remedy}", soft_wrap=True)
        notes = set(r.notes)
        if d.outcome is Outcome.REWRITE:
            for w in d.warnings:
                if w not in notes:
                    console.print(f"           [yellow]rewrite:[/] {w}", soft_wrap=True)
        for note in r.notes:
            console.print(f"           [cyan]note:[/] {note}", soft_wrap=True)
    c = _counts(results, summary)
    skipped = f"; {c['skipped']} file(s) skipped" if c["skipped"] else ""
    console.print(
        f"\n{c['read']} object(s) read, {c['with_routes']} with a cross-cluster route, policy {revision[:19]}: "
        f"[green]{c['allowed']} allowed[/], [yellow]{c['rewritten']} rewritten[/], "
        f"[red]{c['denied']} denied[/] ({c['enforced']} enforced as deny){skipped}"
    )


def render_sarif(results: list[CheckResult], revision: str) -> str:
    rules: dict[str, dict[str, Any]] = {}
    sarif_results: list[dict[str, Any]] = []
    for r in results:
        for v in r.decision.violations:
            rule_id = f"{v.regime}/{v.rule}"
            rules.setdefault(
                rule_id,
                {
                    "id": rule_id,
                    "name": v.rule,
                    "shortDescription": {"text": f"{v.regime} {v.rule}"},
                    "properties": {"regime": v.regime, "article": v.article},
                },
            )
            level = "error" if r.decision.enforced else "warning"
            sarif_results.append(
                {
                    "ruleId": rule_id,
                    "level": level,
                    "message": {"text": f"{r.resource}: {v.message} ({v.article}). Remedy: {v.remedy}"},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": r.file},
                                "region": {"startLine": max(r.line, 1)},
                            }
                        }
                    ],
                    "properties": {
                        "decision_id": r.decision.decision_id,
                        "decision": r.decision.outcome.value,
                        "enforcement": v.enforcement,
                        "cluster": v.cluster,
                    },
                }
            )
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "policyengine",
                        "version": __version__,
                        "informationUri": "https://github.com/policyengine/policyengine",
                        "rules": list(rules.values()),
                    }
                },
                "properties": {"policy_revision": revision},
                "results": sarif_results,
            }
        ],
    }
    return json.dumps(doc, indent=2)


def render_junit(results: list[CheckResult], revision: str) -> str:
    suite = ET.Element(
        "testsuite",
        name="policyengine",
        tests=str(len(results)),
        failures=str(sum(1 for r in results if r.decision.enforced)),
        errors="0",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="policy_revision", value=revision)
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=r.file, name=r.resource)
        d = r.decision
        text = "\n".join(f"{v.regime} {v.rule} ({v.article}): {v.message} Remedy: {v.remedy}" for v in d.violations)
        if d.enforced:
            failure = ET.SubElement(case, "failure", message=f"{d.outcome.value} ({d.enforcement.value})", type="deny")
            failure.text = text
        elif d.violations or d.outcome is Outcome.REWRITE:
            out = ET.SubElement(case, "system-out")
            out.text = f"{d.outcome.value} ({d.enforcement.value})\n{text}"
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
