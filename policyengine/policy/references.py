"""Checks across the policy files: every name one file uses exists in the file that defines it, names
are unique, and dated facts (mechanisms, adequacy, as_of) are not stale.

Errors make the repo unusable; warnings (expired mechanisms or adequacy, stale as_of or DPF check)
are reported and the repo still loads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from policyengine.policy.geography import Geography
from policyengine.policy.models import (
    ClassificationsFile,
    ClustersFile,
    EnforcementFile,
    EntitiesFile,
    JurisdictionsFile,
    RegimesFile,
    RegionsFile,
    ServicesFile,
    TransfersFile,
)
from policyengine.policy.source import Findings, SourceFile

STALE_AFTER = dt.timedelta(days=365)


@dataclass
class _Known:
    """Names each defining file provides, taken from the raw YAML so a broken item causes one error."""

    jurisdictions: set[str]
    groups: set[str]
    regions: set[str]
    entities: set[str]
    clusters: set[str]
    services: set[str]
    regimes: set[str]
    services_present: bool

    def place(self, name: str) -> bool:
        return name in self.jurisdictions or name in self.groups


def _raw_regions(source: SourceFile) -> set[str]:
    items = source.raw.get("regions")
    if not isinstance(items, list):
        return set()
    return {f"{i.get('provider')}/{i.get('code')}" for i in items if isinstance(i, dict)}


def _raw_keys(source: SourceFile, key: str) -> set[str]:
    value = source.raw.get(key)
    return {str(k) for k in value} if isinstance(value, dict) else set()


def check_references(files: dict[str, SourceFile], findings: Findings, today: dt.date) -> Geography:
    """Run every cross-file check; returns the geography built from jurisdictions.yaml."""
    jur = files["jurisdictions"]
    jmodel = jur.model if isinstance(jur.model, JurisdictionsFile) else JurisdictionsFile()
    geography = Geography(jmodel)
    known = _Known(
        jurisdictions=jur.raw_names("jurisdictions", "code") | set(geography.names),
        groups=_raw_keys(jur, "groups"),
        regions=_raw_regions(files["regions"]),
        entities=files["entities"].raw_names("entities", "name"),
        clusters=files["clusters"].raw_names("clusters", "name"),
        services=files["services"].raw_names("services", "name"),
        regimes=_raw_keys(files["regimes"], "regimes"),
        services_present=files["services"].present,
    )
    _check_jurisdictions(jur, jmodel, geography, known, findings)
    _check_regions(files["regions"], known, findings)
    _check_entities(files["entities"], findings, today)
    _check_clusters(files["clusters"], known, findings)
    _check_regimes(files["regimes"], known, findings, today)
    _check_classifications(files["classifications"], files["regimes"], known, findings)
    _check_services(files["services"], known, findings)
    _check_transfers(files["transfers"], files["regimes"], known, findings, today)
    _check_enforcement(files["enforcement"], known, findings)
    return geography


def _duplicates(source: SourceFile, key: str, names: Iterable[str], what: str, findings: Findings) -> None:
    first: dict[str, int] = {}
    for index, name in enumerate(names):
        line = source.item_line(key, index)
        if name in first:
            findings.add(
                source.display,
                line,
                f"duplicate {what} {name!r} (first at line {first[name]}; keep one of them)",
            )
        else:
            first[name] = line or 0


def _unknown_place(
    source: SourceFile, line: int | None, owner: str, name: str, findings: Findings, known: _Known
) -> None:
    if not known.place(name):
        findings.add(
            source.display,
            line,
            f"{owner} names unknown jurisdiction {name!r} (add it to jurisdictions.yaml or fix the code)",
        )


def _check_jurisdictions(
    source: SourceFile, model: JurisdictionsFile, geography: Geography, known: _Known, findings: Findings
) -> None:
    _duplicates(source, "jurisdictions", [j.code for j in model.jurisdictions], "jurisdiction code", findings)
    for i, j in enumerate(model.jurisdictions):
        if j.parent is not None and j.parent not in known.jurisdictions:
            findings.add(
                source.display,
                source.item_line("jurisdictions", i, "parent"),
                f"jurisdiction {j.code!r} names unknown parent {j.parent!r} "
                "(add the parent to jurisdictions.yaml or fix the code)",
            )
        elif geography.cycle_in_parents(j.code):
            findings.add(
                source.display,
                source.item_line("jurisdictions", i, "parent"),
                f"jurisdiction {j.code!r} is its own ancestor (break the parent cycle)",
            )
    for group, members in model.groups.items():
        if group in known.jurisdictions:
            findings.add(
                source.display,
                source.line("groups", group),
                f"group {group!r} has the same name as a jurisdiction (rename the group)",
            )
        for m, member in enumerate(members):
            _unknown_place(
                source, source.line("groups", group, m), f"group {group!r}", member, findings, known
            )
        if geography.cycle_in_group(group):
            findings.add(
                source.display,
                source.line("groups", group),
                f"group {group!r} contains itself through its members (break the cycle)",
            )


def _check_regions(source: SourceFile, known: _Known, findings: Findings) -> None:
    if not isinstance(source.model, RegionsFile):
        return
    regions = source.model.regions
    _duplicates(source, "regions", [r.key for r in regions], "region", findings)
    for i, r in enumerate(regions):
        line = source.item_line("regions", i, "jurisdiction")
        if r.jurisdiction in known.groups:
            findings.add(
                source.display,
                line,
                f"region {r.key!r} names group {r.jurisdiction!r}; "
                "a region is in one jurisdiction (name the country or subdivision)",
            )
        elif r.jurisdiction not in known.jurisdictions:
            findings.add(
                source.display,
                line,
                f"region {r.key!r} names unknown jurisdiction "
                f"{r.jurisdiction!r} (add it to jurisdictions.yaml or fix the code)",
            )


def _check_entities(source: SourceFile, findings: Findings, today: dt.date) -> None:
    if not isinstance(source.model, EntitiesFile):
        return
    entities = source.model.entities
    _duplicates(source, "entities", [e.name for e in entities], "entity", findings)
    selves = [i for i, e in enumerate(entities) if e.is_self]
    if source.present and len(selves) != 1:
        line = source.item_line("entities", selves[1]) if len(selves) > 1 else source.line("entities")
        findings.add(
            source.display,
            line,
            f"{len(selves)} entities have self: true; exactly one must "
            "(mark the business itself with self: true)",
        )
    for i, e in enumerate(entities):
        if e.kind is not None and (e.kind == "self") != e.is_self:
            findings.add(
                source.display,
                source.item_line("entities", i, "kind"),
                f"entity {e.name!r} has kind {e.kind!r} but self: {str(e.is_self).lower()} "
                "(kind self goes with self: true)",
            )
        if e.ccpa is not None and e.ccpa.expires is not None and e.ccpa.expires < today:
            findings.add(
                source.display,
                source.item_line("entities", i, "ccpa", "expires"),
                f"the CCPA contract {e.ccpa.contract or ''!s} of entity {e.name!r} expired on "
                f"{e.ccpa.expires.isoformat()} (renew it and update expires)",
                "warning",
            )
        if e.dpf_certified and e.dpf_checked is not None and today - e.dpf_checked > STALE_AFTER:
            findings.add(
                source.display,
                source.item_line("entities", i, "dpf_checked"),
                f"the DPF certification of entity {e.name!r} was last checked on "
                f"{e.dpf_checked.isoformat()} (check the DPF list again)",
                "warning",
            )


def _check_clusters(source: SourceFile, known: _Known, findings: Findings) -> None:
    if not isinstance(source.model, ClustersFile):
        return
    clusters = source.model.clusters
    _duplicates(source, "clusters", [c.name for c in clusters], "cluster", findings)
    keys = [c.fsm_key or f"{c.region.partition('/')[2]}/default/default/{c.name}" for c in clusters]
    _duplicates(source, "clusters", keys, "fsm_key", findings)
    _duplicates(source, "clusters", [c.linkerd_link or c.name for c in clusters], "linkerd_link", findings)
    _duplicates(source, "clusters", [c.kube_context or c.name for c in clusters], "kube_context", findings)
    for i, c in enumerate(clusters):
        if c.region not in known.regions:
            findings.add(
                source.display,
                source.item_line("clusters", i, "region"),
                f"cluster {c.name!r} names unknown region {c.region!r} "
                "(add it to regions.yaml or fix the name)",
            )
        if c.entity not in known.entities:
            findings.add(
                source.display,
                source.item_line("clusters", i, "entity"),
                f"cluster {c.name!r} names unknown entity {c.entity!r} "
                "(add it to entities.yaml or fix the name)",
            )


def _check_regimes(source: SourceFile, known: _Known, findings: Findings, today: dt.date) -> None:
    model = source.model
    if not isinstance(model, RegimesFile):
        return
    if today - model.as_of > STALE_AFTER:
        findings.add(
            source.display,
            source.line("as_of"),
            f"as_of {model.as_of.isoformat()} is more than a year old (review the regimes against "
            "current law and update as_of)",
            "warning",
        )
    for name, regime in model.regimes.items():
        for field in ("subjects", "home", "origin"):
            for k, place in enumerate(getattr(regime, field)):
                _unknown_place(
                    source,
                    source.line("regimes", name, field, k),
                    f"regime {name!r} {field}",
                    place,
                    findings,
                    known,
                )
        seen: dict[str, int] = {}
        for k, adequacy in enumerate(regime.adequacy):
            line = source.line("regimes", name, "adequacy", k)
            _unknown_place(source, line, f"regime {name!r} adequacy", adequacy.jurisdiction, findings, known)
            if adequacy.jurisdiction in seen:
                findings.add(
                    source.display,
                    line,
                    f"duplicate adequacy for {adequacy.jurisdiction!r} in regime "
                    f"{name!r} (first at line {seen[adequacy.jurisdiction]}; keep one)",
                )
            seen.setdefault(adequacy.jurisdiction, line or 0)
            if adequacy.expires is not None and adequacy.expires < today:
                findings.add(
                    source.display,
                    line,
                    f"the {name} adequacy decision for {adequacy.jurisdiction} expired on "
                    f"{adequacy.expires.isoformat()} (check for a renewal; update or remove it)",
                    "warning",
                )


def _regime_classes(regimes: SourceFile) -> set[str] | None:
    if not isinstance(regimes.model, RegimesFile):
        return None
    return {c for r in regimes.model.regimes.values() for c in r.data_classes}


def _check_classifications(
    source: SourceFile, regimes: SourceFile, known: _Known, findings: Findings
) -> None:
    if not isinstance(source.model, ClassificationsFile):
        return
    rules = source.model.classifications
    _duplicates(source, "classifications", [c.name for c in rules], "classification", findings)
    classes = _regime_classes(regimes)
    for i, rule in enumerate(rules):
        for field in ("subjects", "origin"):
            for k, place in enumerate(getattr(rule, field) or []):
                _unknown_place(
                    source,
                    source.item_line("classifications", i, field, k),
                    f"classification {rule.name!r} {field}",
                    place,
                    findings,
                    known,
                )
        for k, data_class in enumerate(rule.data_classes or []):
            if classes is not None and data_class not in classes:
                findings.add(
                    source.display,
                    source.item_line("classifications", i, "data_classes", k),
                    f"classification {rule.name!r} names data class {data_class!r}, which no regime "
                    f"governs (known: {', '.join(sorted(classes))}; fix the spelling if it is a typo)",
                    "warning",
                )


def _check_services(source: SourceFile, known: _Known, findings: Findings) -> None:
    if not isinstance(source.model, ServicesFile):
        return
    services = source.model.services
    _duplicates(source, "services", [s.name for s in services], "service", findings)
    owners: dict[tuple[str, str], str] = {}
    for i, s in enumerate(services):
        for k, cluster in enumerate(s.clusters):
            if cluster not in known.clusters:
                findings.add(
                    source.display,
                    source.item_line("services", i, "clusters", k),
                    f"service {s.name!r} names unknown cluster {cluster!r} "
                    "(add it to clusters.yaml or fix the name)",
                )
        for field in ("identities", "hosts"):
            for k, value in enumerate(getattr(s, field)):
                other = owners.setdefault((field, value), s.name)
                if other != s.name:
                    findings.add(
                        source.display,
                        source.item_line("services", i, field, k),
                        f"{field[:-1] if field == 'hosts' else 'identity'} {value!r} of service "
                        f"{s.name!r} already belongs to service {other!r} (each must name one service)",
                    )


def _check_transfers(
    source: SourceFile, regimes: SourceFile, known: _Known, findings: Findings, today: dt.date
) -> None:
    if not isinstance(source.model, TransfersFile):
        return
    transfers = source.model.transfers
    _duplicates(source, "transfers", [t.id for t in transfers], "transfer id", findings)
    counted: set[str] | None = None
    if isinstance(regimes.model, RegimesFile):
        counted = {m for r in regimes.model.regimes.values() for m in r.mechanisms}
    checks: dict[str, tuple[Callable[[str], bool], str]] = {
        "cluster": (lambda n: n in known.clusters, "clusters.yaml"),
        "jurisdiction": (known.place, "jurisdictions.yaml"),
        "entity": (lambda n: n in known.entities, "entities.yaml"),
    }
    for i, t in enumerate(transfers):
        if counted is not None and t.type not in counted:
            findings.add(
                source.display,
                source.item_line("transfers", i, "type"),
                f"transfer {t.id!r} has type {t.type!r}, which no regime lists in its mechanisms "
                "(add it to a regime's mechanisms in regimes.yaml or fix the type)",
            )
        if t.service != "*" and known.services_present and t.service not in known.services:
            findings.add(
                source.display,
                source.item_line("transfers", i, "service"),
                f"transfer {t.id!r} names unknown service {t.service!r} "
                '(add it to services.yaml, fix the name, or use "*" for every service)',
            )
        for field, (exists, home) in checks.items():
            value = getattr(t.destination, field)
            if value is not None and not exists(value):
                findings.add(
                    source.display,
                    source.item_line("transfers", i, "destination", field),
                    f"transfer {t.id!r} names unknown {field} {value!r} (add it to {home} or fix the name)",
                )
        if t.expires is not None and t.expires < today:
            findings.add(
                source.display,
                source.item_line("transfers", i, "expires"),
                f"transfer {t.id!r} ({t.type} for {t.service}) expired on {t.expires.isoformat()}; "
                "it no longer permits anything (renew it and update expires, or remove it)",
                "warning",
            )


def _check_enforcement(source: SourceFile, known: _Known, findings: Findings) -> None:
    if not isinstance(source.model, EnforcementFile):
        return
    for i, rule in enumerate(source.model.rules):
        if rule.regime != "*" and rule.regime not in known.regimes:
            findings.add(
                source.display,
                source.item_line("rules", i, "regime"),
                f"enforcement rule names unknown regime {rule.regime!r} "
                f'(use one of {", ".join(sorted(known.regimes))} or "*")',
            )
