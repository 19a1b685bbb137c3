"""Realistic decisions for audit tests, built from the core dataclasses: GDPR denials eu-1 -> us-1,
PIPL rewrites to cn-1, and allows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from policyengine.audit import AuditRecord
from policyengine.decision import Decision, Enforcement, Outcome, Violation

REVISION = "sha256:" + "ab" * 32
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def gdpr_denial(n: int = 0) -> Decision:
    return Decision(
        decision_id=f"gdpr-{n}-{uuid.uuid4().hex[:8]}",
        outcome=Outcome.DENY,
        enforcement=Enforcement.DENY,
        violations=(
            Violation(
                regime="GDPR",
                rule="no_transfer_without_mechanism",
                article="GDPR Art. 44-46",
                message="shop/checkout in eu-1 would send personal data of EU subjects to us-1 (us-east-1)",
                remedy="route to eu-1 or eu-2, or record an SCC transfer mechanism for us-1",
                cluster="us-1",
            ),
        ),
        permitted_clusters=("eu-1", "eu-2"),
        policy_revision=REVISION,
        engine="regorus",
        latency_us=142.5 + n,
        regimes=("GDPR",),
        input_digest="sha256:" + uuid.uuid4().hex * 2,
    )


def pipl_rewrite(n: int = 0) -> Decision:
    return Decision(
        decision_id=f"pipl-{n}-{uuid.uuid4().hex[:8]}",
        outcome=Outcome.REWRITE,
        enforcement=Enforcement.REWRITE,
        violations=(
            Violation(
                regime="PIPL",
                rule="outbound_over_threshold",
                article="PIPL Art. 38-40",
                message="payments/ledger sends personal information of 1,200,000 individuals out of cn-1",
                remedy="keep the route in cn-1 or file a CAC security assessment",
                cluster="sg-1",
                enforcement="rewrite",
            ),
        ),
        permitted_clusters=("cn-1",),
        policy_revision=REVISION,
        engine="regorus",
        latency_us=210.0,
        regimes=("PIPL",),
        patch=({"op": "replace", "path": "/spec/targets/0/cluster", "value": "cn-1"},),
        input_digest="sha256:" + uuid.uuid4().hex * 2,
    )


def allow(n: int = 0) -> Decision:
    return Decision(
        decision_id=f"allow-{n}-{uuid.uuid4().hex[:8]}",
        outcome=Outcome.ALLOW,
        enforcement=Enforcement.DENY,
        violations=(),
        permitted_clusters=("eu-1", "eu-2"),
        policy_revision=REVISION,
        engine="regorus",
        latency_us=88.0,
        regimes=("GDPR",),
        input_digest="sha256:" + uuid.uuid4().hex * 2,
    )


def admission_record(decision: Decision, n: int = 0, when: datetime | None = None) -> AuditRecord:
    return AuditRecord(
        source="admission",
        decision=decision,
        cluster="eu-1",
        operation="CREATE",
        api_version="networking.istio.io/v1",
        kind="ServiceEntry",
        namespace="shop",
        name=f"checkout-{n}",
        dry_run=False,
        user="system:serviceaccount:argocd:argocd-application-controller",
        input={"request": {"object": {"kind": "ServiceEntry", "metadata": {"name": f"checkout-{n}"}}}},
        time=when,
    )


def routing_record(decision: Decision, when: datetime | None = None) -> AuditRecord:
    return AuditRecord(
        source="routing",
        decision=decision,
        cluster="cn-1",
        service="payments/ledger",
        source_cluster="cn-1",
        destination_cluster="sg-1",
        user="spiffe://cluster.local/ns/payments/sa/ledger",
        time=when,
    )


def mixed_records(count: int, start: datetime = T0, step: timedelta = timedelta(minutes=7)) -> list[AuditRecord]:
    """`count` records cycling denial, rewrite, allow, allow, one every `step` from `start`."""
    out: list[AuditRecord] = []
    for n in range(count):
        when = start + step * n
        kind = n % 4
        if kind == 0:
            out.append(admission_record(gdpr_denial(n), n, when))
        elif kind == 1:
            out.append(routing_record(pipl_rewrite(n), when))
        else:
            out.append(admission_record(allow(n), n, when))
    return out
