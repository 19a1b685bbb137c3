"""Combining route decisions into one decision per object (`evaluate.combine`).

The route decisions here are `Decision` values written out by hand, so each combination rule is
tested on its own; `test_evaluate_e2e.py` gets them from the real rules and the regorus engine.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from policyengine.admission.evaluate import RouteVerdict, combine
from policyengine.admission.extract import extract_crossings, extractors_for
from policyengine.decision import Decision, Enforcement, Outcome, Violation

from .directory import context

GTP: dict[str, Any] = {
    "apiVersion": "multicluster.flomesh.io/v1alpha1",
    "kind": "GlobalTrafficPolicy",
    "metadata": {"name": "checkout", "namespace": "shop"},
    "spec": {
        "lbType": "ActiveActive",
        "targets": [
            {"clusterKey": "eu-west-1/default/default/eu-2"},
            {"clusterKey": "us-east-1/default/default/us-1"},
        ],
    },
}
MCS_EXPORT = {
    "apiVersion": "multicluster.x-k8s.io/v1beta1",
    "kind": "ServiceExport",
    "metadata": {"name": "checkout", "namespace": "shop"},
}
EU = ("eu-1", "eu-2")


def route_decision(cluster: str, enforcement: Enforcement = Enforcement.REWRITE) -> Decision:
    """The rules' answer for a GDPR route to `cluster`: allowed inside the EU, refused elsewhere."""
    allowed = cluster in EU
    violations = (
        ()
        if allowed
        else (
            Violation(
                "GDPR",
                "gdpr-transfer",
                "GDPR Art. 44-46",
                f"moves EEA data to {cluster}",
                "keep it in the EEA",
                cluster,
                enforcement.value,
            ),
        )
    )
    return Decision(
        decision_id=f"route-{cluster}",
        outcome=Outcome.ALLOW if allowed else Outcome.DENY,
        enforcement=enforcement,
        violations=violations,
        permitted_clusters=EU,
        policy_revision="sha256:abc",
        engine="regorus",
        latency_us=50.0,
        regimes=("GDPR",),
    )


def verdicts(manifest: dict[str, Any], cluster: str = "eu-1", **kwargs: Any) -> list[RouteVerdict]:
    ctx = context(cluster)
    (extractor,) = extractors_for(manifest)
    return [RouteVerdict(c, extractor, route_decision(c.far, **kwargs)) for c in extract_crossings(manifest, ctx)]


def test_all_routes_allowed_is_an_allow() -> None:
    eu_only = copy.deepcopy(GTP)
    del eu_only["spec"]["targets"][1]
    decision = combine(eu_only, context(), "sha256:abc", verdicts(eu_only))
    assert decision.outcome is Outcome.ALLOW and decision.violations == ()
    assert decision.regimes == ("GDPR",) and decision.latency_us == 50.0
    assert decision.extra["routes"][0]["decision_id"] == "route-eu-2"
    assert decision.permitted_clusters == EU


def test_refused_target_under_rewrite_is_a_rewrite_with_patch_and_warnings() -> None:
    decision = combine(GTP, context(), "sha256:abc", verdicts(GTP))
    assert decision.outcome is Outcome.REWRITE and not decision.enforced
    assert jsonpatch.apply_patch(GTP, list(decision.patch))["spec"]["targets"] == [
        {"clusterKey": "eu-west-1/default/default/eu-2"}
    ]
    assert decision.warnings == (
        "removed spec.targets[1] us-east-1/default/default/us-1",
        "us-1 refused by GDPR (GDPR Art. 44-46)",
    )
    assert [v.cluster for v in decision.violations] == ["us-1"]
    assert decision.latency_us == 100.0 and decision.policy_revision == "sha256:abc"


def test_decision_ids_are_unique_per_object_decision() -> None:
    ids = {combine(GTP, context(), "r", verdicts(GTP)).decision_id for _ in range(5)}
    assert len(ids) == 5


def test_deny_enforcement_is_a_deny_even_when_the_family_can_rewrite() -> None:
    decision = combine(GTP, context(), "r", verdicts(GTP, enforcement=Enforcement.DENY))
    assert decision.outcome is Outcome.DENY and decision.enforced and decision.patch == ()


def test_family_without_rewrite_is_denied_with_its_remedy_and_deduplicated_violations() -> None:
    decision = combine(MCS_EXPORT, context(), "r", verdicts(MCS_EXPORT))
    assert decision.outcome is Outcome.DENY and decision.enforced
    assert [v.cluster for v in decision.violations] == ["cn-1", "us-1"]
    assert decision.violations[0].remedy.startswith("keep it in the EEA; or MCS exports to the whole clusterset")
    doubled = verdicts(MCS_EXPORT) + verdicts(MCS_EXPORT)
    assert len(combine(MCS_EXPORT, context(), "r", doubled).violations) == 2


def test_warn_lets_the_object_through_with_warnings() -> None:
    decision = combine(GTP, context(), "r", verdicts(GTP, enforcement=Enforcement.WARN))
    assert decision.outcome is Outcome.DENY and decision.enforcement is Enforcement.WARN
    assert not decision.enforced
    assert decision.warnings == ("GDPR Art. 44-46: moves EEA data to us-1",)


def test_long_warnings_are_cut_to_120_characters() -> None:
    long_key = copy.deepcopy(GTP)
    long_key["spec"]["targets"][1]["clusterKey"] = "x" * 200
    decision = combine(long_key, context(), "r", verdicts(long_key))
    assert decision.outcome is Outcome.REWRITE
    assert all(len(w) <= 120 for w in decision.warnings)
    assert decision.warnings[0].endswith("…")


def test_object_without_routes_is_allowed() -> None:
    decision = combine(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, context(), "r", [], "regorus"
    )
    assert decision.outcome is Outcome.ALLOW
    assert (decision.engine, decision.policy_revision, decision.extra["routes"]) == ("regorus", "r", [])
