"""The decision table on the default policy repo and the real regorus engine: preference order,
rebuild on reload, unknown identities and hosts, GPC."""

from __future__ import annotations

import shutil
from pathlib import Path

from policyengine.decision import Outcome
from policyengine.routing.adapters import AuthzRequest
from policyengine.routing.filter import RoutingFilter
from policyengine.routing.identity import SourceIdentity, parse_identity
from policyengine.routing.table import DecisionTable, preference_order
from routing.parts import BILLING, CATALOG, CHECKOUT, POLICIES, PROFILE, Snapshot, snapshot_of


def ident(value: str) -> SourceIdentity:
    return parse_identity(value, "test")


def test_preference_is_here_then_same_country_then_the_rest() -> None:
    jurisdictions = {"us-1": "US", "us-ca-1": "US-CA", "eu-1": "DE", "eu-2": "BE", "ads-1": "US", "x": None}
    order = preference_order(["eu-2", "x", "ads-1", "eu-1", "us-ca-1", "us-1"], "us-1", jurisdictions)
    assert order == ("us-1", "ads-1", "us-ca-1", "eu-1", "eu-2", "x")
    assert preference_order(["eu-2", "eu-1"], "us-1", jurisdictions) == ("eu-1", "eu-2")


def test_table_judges_each_key_once_and_answers_every_known_pair(default_snapshot: Snapshot) -> None:
    table = DecisionTable.build(default_snapshot.policy, default_snapshot.decider, "eu-1")
    services = sorted(default_snapshot.policy.data["services"])
    assert len(services) == 6
    assert table.complete and table.revision == default_snapshot.policy.revision
    assert table.evaluations == table.size == len(table.all_keys())
    assert table.size < len(services) ** 2 * 2  # pairs share keys (and the opt-out only matters for CCPA)
    for source in services:
        for destination in services:
            for opt_out in (False, True):
                answer = table.lookup(ident(source), destination, opt_out)
                assert answer.known and (answer.source, answer.destination, answer.opt_out) == (
                    source,
                    destination,
                    opt_out,
                )
    assert table.evaluations == table.size  # the lookups evaluated nothing more


def test_gdpr_caller_gets_only_eea_clusters_in_preference_order(default_snapshot: Snapshot) -> None:
    table = DecisionTable.build(default_snapshot.policy, default_snapshot.decider, "eu-1")
    answer = table.lookup(ident(CHECKOUT), "shop/catalog", False)
    assert answer.allowed
    # here, then the others GDPR permits: the other EEA cluster and partner-1 (run by a DPF-certified
    # partner, adequate under GDPR Art. 45); never us-1 (its SCC expired).
    assert answer.clusters == ("eu-1", "eu-2", "partner-1")
    assert "GDPR" in answer.decision.regimes
    unregulated = table.lookup(ident(CATALOG), "shop/catalog", False)
    assert unregulated.clusters[0] == "eu-1"
    assert set(unregulated.clusters) == set(default_snapshot.policy.cluster_names())


def test_pipl_data_may_not_come_back_to_eu(default_snapshot: Snapshot) -> None:
    table = DecisionTable.build(default_snapshot.policy, default_snapshot.decider, "eu-1")
    answer = table.lookup(ident(CATALOG), "shop/profile", False)
    assert not answer.allowed
    assert answer.clusters == ()
    assert any(v.regime == "PIPL" and v.article for v in answer.decision.violations)


def test_gpc_refuses_the_ccpa_third_party(default_snapshot: Snapshot) -> None:
    table = DecisionTable.build(default_snapshot.policy, default_snapshot.decider, "us-1")
    plain = table.lookup(ident(BILLING), "shop/billing", False)
    opted_out = table.lookup(ident(BILLING), "shop/billing", True)
    assert "ads-1" in plain.clusters
    assert "ads-1" not in opted_out.clusters
    assert opted_out.clusters[0] == "us-1"
    assert plain.clusters[0] == "us-1"


def test_unknown_identity_is_judged_once_then_cached(default_snapshot: Snapshot) -> None:
    table = DecisionTable.build(default_snapshot.policy, default_snapshot.decider, "eu-1", cache_size=2)
    stranger = ident("spiffe://acme.example/ns/shop/sa/checkout-canary")  # classified as checkout (GDPR)
    first = table.lookup(stranger, "shop/catalog", False)
    assert not first.known
    assert first.clusters == ("eu-1", "eu-2", "partner-1")
    assert table.lookup(stranger, "shop/catalog", False) is first  # no second engine call
    assert table.cached == 1
    for n in range(3):  # the cache is bounded
        table.lookup(ident(f"spiffe://other.example/job/{n}"), "shop/catalog", False)
    assert table.cached == 2
    evaluations = table.evaluations
    again = table.peek(stranger, "shop/catalog", False)  # evicted (least recently used), but its key
    assert again is not None and again is not first  # was judged today: made again with no engine call
    assert again.clusters == first.clusters and table.evaluations == evaluations
    assert table.peek(ident("spiffe://acme.example/ns/analytics/sa/new"), "shop/catalog", False) is None  # new key


def test_unknown_host_in_kubernetes_form_is_judged_by_classification(default_snapshot: Snapshot) -> None:
    table = DecisionTable.build(default_snapshot.policy, default_snapshot.decider, "eu-1")
    service = table.destination_of("checkout-v2.shop.svc.cluster.local")
    assert service == "shop/checkout-v2"
    answer = table.lookup(ident(CATALOG), service, False)
    assert answer.allowed and answer.clusters == ("eu-1", "eu-2", "partner-1")  # GDPR: the checkout-* rule
    assert table.destination_of("www.example.com") is None


def test_verdicts_have_fresh_decision_ids(default_snapshot: Snapshot) -> None:
    routing = RoutingFilter("eu-1")
    routing.install(default_snapshot)
    request = AuthzRequest(ident(CHECKOUT), "catalog.shop.svc.clusterset.local", False, "GET", "/")
    first, second = routing.judge(request), routing.judge(request)
    assert first.status == second.status == 200
    assert first.headers["x-policyengine-cluster"] == "eu-1"
    assert first.decision.decision_id != second.decision.decision_id
    assert first.headers["x-policyengine-decision-id"] == first.decision.decision_id


def test_a_preferred_cluster_is_honoured_only_when_permitted(default_snapshot: Snapshot) -> None:
    routing = RoutingFilter("eu-1")
    routing.install(default_snapshot)
    gdpr = AuthzRequest(ident(CHECKOUT), "catalog.shop", False, "GET", "/", prefer="us-1")
    assert routing.judge(gdpr).destination_cluster == "eu-1"
    free = AuthzRequest(ident(CATALOG), "catalog.shop", False, "GET", "/", prefer="us-1")
    assert routing.judge(free).destination_cluster == "us-1"


def test_refusal_names_regime_article_and_remedy(default_snapshot: Snapshot) -> None:
    routing = RoutingFilter("eu-1")
    routing.install(default_snapshot)
    verdict = routing.judge(AuthzRequest(ident(CHECKOUT), "profile.shop", False, "GET", "/"))
    assert verdict.status == 403
    assert verdict.decision.outcome is Outcome.DENY
    regimes = {v["regime"] for v in verdict.body["violations"]}
    assert {"GDPR", "PIPL"} & regimes
    assert all(v["article"] and v["remedy"] for v in verdict.body["violations"])
    assert "x-policyengine-denial" in verdict.headers


def test_reload_rebuilds_in_the_background_and_swaps(tmp_path: Path, default_snapshot: Snapshot) -> None:
    repo = tmp_path / "policies"
    shutil.copytree(POLICIES, repo)
    routing = RoutingFilter("eu-1")
    routing.on_reload(snapshot_of(repo))
    routing.wait_for_builds()
    before = routing.table
    known = len(default_snapshot.policy.data["services"])
    assert before is not None and before.complete and before.size == len(before.all_keys())
    assert before.lookup(ident(PROFILE), "shop/catalog", False).allowed is False  # PIPL stays home
    # Declare a new service; the reload builds a new table and swaps it in atomically.
    services = repo / "services.yaml"
    services.write_text(
        services.read_text()
        + "  - name: shop/search\n    clusters: [eu-1, us-1]\n"
        + '    identities: ["spiffe://acme.example/ns/shop/sa/search"]\n'
        + "    hosts: [search.shop.svc.clusterset.local]\n"
    )
    routing.on_reload(snapshot_of(repo))
    routing.wait_for_builds()
    after = routing.table
    assert after is not None and after is not before
    assert after.revision != before.revision
    assert after.complete and after.services == known + 1 and after.size == len(after.all_keys())
    assert after.reused > 0 and after.evaluations == after.size - after.reused  # only the new keys judged
    assert after.destination_of("search.shop.svc.clusterset.local") == "shop/search"
    assert before.destination_of("search.shop.svc.clusterset.local") == "shop/search"  # k8s form
    assert not before.is_known_destination("shop/search")
