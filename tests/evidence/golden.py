"""A fixed audit trail for the evidence tests and bench: decisions of the real rules (regorus, the
default policy repo) from the routing filter in five clusters and from admission of the example shop
manifests in three, every regime (GDPR, PIPL, CCPA, unregulated) and outcome (allow, deny, rewrite),
written through the real chained writer and signed with a key made for the run.

The same `rows` give the same trail: the templates are judged once, in a fixed order, and cycled with
times spread evenly over DAYS days from T0 (decision ids are fresh per row, from a seeded PRNG).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.admission.manifests import read_manifests
from policyengine.audit import AuditRecord, AuditWriter
from policyengine.audit.head_signer import HeadSigner
from policyengine.audit.sealer import Sealer
from policyengine.audit.signing import SigningKey
from policyengine.decide import Decider, new_decision_id
from policyengine.engine import make_engine
from policyengine.policy import load_policy
from policyengine.resources import default_policies
from policyengine.routing.adapters import AuthzRequest
from policyengine.routing.filter import RoutingFilter
from policyengine.routing.identity import parse_identity

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30
ROUTING_CLUSTERS = ("eu-1", "us-1", "cn-1", "hk-1", "us-ca-1")
ADMISSION_CLUSTERS = ("eu-1", "cn-1", "us-1")
IDENTITIES = (
    "spiffe://acme.example/ns/shop/sa/checkout",
    "spiffe://acme.example/ns/shop/sa/profile",
    "spiffe://acme.example/ns/shop/sa/billing",
    "spiffe://acme.example/ns/shop/sa/catalog",
    "spiffe://acme.example/ns/shop/sa/orders",
    "spiffe://acme.example/ns/logistics/sa/manifests",
)
HOSTS = (
    "checkout.shop.svc.clusterset.local",
    "profile.shop.svc.clusterset.local",
    "billing.shop.svc.clusterset.local",
    "catalog.shop.svc.clusterset.local",
    "orders.shop.svc.clusterset.local",
    "manifests.logistics.svc.clusterset.local",
    "www.example.com",  # not a known service: refused as unjudgeable
)


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    policy: object
    decider: Decider


def templates() -> list[AuditRecord]:
    """One record per (cluster, caller, host, opt-out) of the routing filter and per (cluster, object)
    of admission, judged at T0 + 15 days."""
    policy = load_policy(default_policies())
    decider = Decider(policy, make_engine("regorus"))
    out: list[AuditRecord] = []
    for cluster in ROUTING_CLUSTERS:
        routing = RoutingFilter(cluster)
        routing.install(Snapshot(policy, decider))  # type: ignore[arg-type]
        for identity in IDENTITIES:
            for host in HOSTS:
                for opt_out in (False, True):
                    verdict = routing.judge(AuthzRequest(parse_identity(identity, "golden"), host, opt_out, "GET", "/"))
                    out.append(
                        AuditRecord(
                            source="routing",
                            decision=verdict.decision,
                            cluster=cluster,
                            operation="AUTHZ",
                            service=verdict.service,
                            source_cluster=cluster,
                            destination_cluster=verdict.destination_cluster,
                            user=str(verdict.decision.extra.get("source", "")),  # as the server records it
                        )
                    )
    manifests = read_manifests([ROOT / "examples" / "shop"])
    context = EvaluationContext(manifests=[d.body for d in manifests.documents], now=T0 + timedelta(days=15))
    for cluster in ADMISSION_CLUSTERS:
        for doc in manifests.documents:
            decision = evaluate_manifest(doc.body, decider, cluster, context)
            out.append(AuditRecord.for_manifest(decision, doc.body, source="admission", cluster=cluster))
    return out


def records(rows: int, *, seed: int = 16) -> Iterator[AuditRecord]:
    """`rows` records cycling the templates, times spread over DAYS days (in order)."""
    random.seed(seed)
    pool = templates()
    step = timedelta(days=DAYS) / rows
    for i in range(rows):
        template = pool[i % len(pool)]
        decision = dataclasses.replace(template.decision, decision_id=new_decision_id())
        yield dataclasses.replace(template, decision=decision, time=T0 + step * i)


async def _write(writer: AuditWriter, rows: int, chunk: int) -> None:
    pending = []
    for record in records(rows):
        pending.append(writer.record_async(record))
        if len(pending) >= chunk:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


def fill(url: str, rows: int, key: SigningKey, spool: Path, *, chunk: int = 2000) -> None:
    """Write `rows` golden decisions to the migrated trail at `url`, the chain's head signed and closed."""
    sealer = Sealer.open(url, key)
    with AuditWriter.open(url, chain_id="golden-1", spool_dir=spool) as writer:
        asyncio.run(_write(writer, rows, chunk))
    HeadSigner(writer, sealer).close()
