"""The policy repo as the plain JSON Rego reads at `data.policyengine.policy` (docs/policy-repo.md).

Every name is resolved (a cluster carries its jurisdiction and what that is `in`), groups are expanded
to jurisdiction codes, sets are sorted lists and dates are YYYY-MM-DD strings.
"""

from __future__ import annotations

from typing import Any

from policyengine.policy.geography import Geography
from policyengine.policy.models import (
    Cluster,
    ClustersFile,
    EnforcementFile,
    EntitiesFile,
    Entity,
    Regime,
    RegimesFile,
    RegionsFile,
    ServicesFile,
    TransfersFile,
)


def default_fsm_key(cluster: Cluster) -> str:
    """FSM's cluster key (region/zone/group/name) when clusters.yaml does not give one."""
    return f"{cluster.region.partition('/')[2]}/default/default/{cluster.name}"


def default_locality(cluster: Cluster) -> str:
    """The Istio locality region when clusters.yaml does not give one: the provider's region code."""
    return cluster.region.partition("/")[2]


def _entity(entity: Entity) -> dict[str, Any]:
    ccpa = None
    if entity.ccpa is not None:
        ccpa = {
            "role": entity.ccpa.role,
            "contract": entity.ccpa.contract,
            "expires": entity.ccpa.expires.isoformat() if entity.ccpa.expires else None,
            "purposes": sorted(entity.ccpa.purposes),
        }
    return {
        "name": entity.name,
        "kind": entity.resolved_kind,
        "self": entity.is_self,
        "dpf_certified": entity.dpf_certified,
        "dpf_checked": entity.dpf_checked.isoformat() if entity.dpf_checked else None,
        "ca_commercial": entity.ca_commercial,
        "ccpa": ccpa,
    }


def _regime(regime: Regime, geography: Geography) -> dict[str, Any]:
    adequacy: dict[str, Any] = {}
    for decision in regime.adequacy:
        for code in geography.expand([decision.jurisdiction]):
            adequacy[code] = {
                "condition": decision.condition,
                "expires": decision.expires.isoformat() if decision.expires else None,
            }
    thresholds = regime.thresholds.model_dump() if regime.thresholds is not None else None
    return {
        "title": regime.title,
        "subjects": list(geography.expand(regime.subjects)),
        "data_classes": sorted(set(regime.data_classes)),
        "home": list(geography.expand(regime.home)),
        "localisation": regime.localisation,
        "adequacy": dict(sorted(adequacy.items())),
        "mechanisms": sorted(set(regime.mechanisms)),
        "thresholds": thresholds,
        "articles": dict(regime.articles),
        "sources": list(regime.sources),
    }


def compile_data(
    *,
    revision: str,
    geography: Geography,
    regions: RegionsFile,
    entities: EntitiesFile,
    clusters: ClustersFile,
    regimes: RegimesFile,
    services: ServicesFile,
    transfers: TransfersFile,
    enforcement: EnforcementFile,
) -> dict[str, Any]:
    """Build the JSON document for `data.policyengine.policy` from validated, cross-checked files."""
    region_of = {r.key: r for r in regions.regions}
    compiled_clusters: dict[str, Any] = {}
    for c in clusters.clusters:
        jurisdiction = region_of[c.region].jurisdiction
        compiled_clusters[c.name] = {
            "name": c.name,
            "region": c.region,
            "jurisdiction": jurisdiction,
            "in": list(geography.within(jurisdiction)),
            "entity": c.entity,
            "fsm_key": c.fsm_key or default_fsm_key(c),
            "locality": c.locality or default_locality(c),
            "network": c.network or "",
            "linkerd_link": c.linkerd_link or c.name,
            "kube_context": c.kube_context or c.name,
        }
    return {
        "revision": revision,
        "as_of": regimes.as_of.isoformat(),
        "jurisdictions": {
            code: {"name": name, "parent": geography.parents.get(code), "in": list(geography.within(code))}
            for code, name in sorted(geography.names.items())
        },
        "groups": {group: list(members) for group, members in sorted(geography.groups.items())},
        "regions": {
            key: {
                "provider": r.provider,
                "code": r.code,
                "jurisdiction": r.jurisdiction,
                "location": r.location,
            }
            for key, r in sorted(region_of.items())
        },
        "entities": {e.name: _entity(e) for e in sorted(entities.entities, key=lambda e: e.name)},
        "clusters": dict(sorted(compiled_clusters.items())),
        "regimes": {name: _regime(r, geography) for name, r in sorted(regimes.regimes.items())},
        "transfers": [
            {
                "id": t.id,
                "type": t.type,
                "service": t.service,
                "destination": t.destination.model_dump(),
                "expires": t.expires.isoformat() if t.expires else None,
                "reference": t.reference,
            }
            for t in transfers.transfers
        ],
        "enforcement": {
            "default": enforcement.default,
            "rules": [r.model_dump() for r in enforcement.rules],
        },
        "services": {
            s.name: {
                "clusters": sorted(set(s.clusters)),
                "identities": sorted(set(s.identities)),
                "hosts": sorted(set(s.hosts)),
            }
            for s in sorted(services.services, key=lambda s: s.name)
        },
    }
