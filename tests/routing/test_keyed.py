"""The keyed decision table against direct decisions, on generated repos of 300 services.

Every keyed answer is compared with the same pair judged on its own by a second Decider on its own
regorus engine (a full Rego evaluation of the pair's input, at the same decision time): the decision
(outcome, enforcement, violations with their messages, permitted clusters, regimes, revision, input
digest) and what the filter does with it (allowed, clusters in order, warned). A key that left out
something the rules read would make two pairs with different answers share one, and this fails.
"""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from policyengine.decide import Decider
from policyengine.engine import make_engine
from policyengine.policy import LoadedPolicy, load_policy
from policyengine.routing.filter import RoutingFilter
from policyengine.routing.identity import SourceIdentity, parse_identity
from policyengine.routing.keys import Coverage, coverage, uncovered_read
from policyengine.routing.table import DecisionTable, RouteAnswer
from routing.parts import POLICIES, Snapshot
from routing.scale_repos import write_repo

SERVICES = 300
CLUSTERS = 30
SAMPLE = 300


def ident(value: str) -> SourceIdentity:
    return parse_identity(value, "test")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_repo(tmp_path_factory.mktemp("scale") / "policies", POLICIES, services=SERVICES, clusters=CLUSTERS)


@pytest.fixture(scope="module")
def policy(repo: Path) -> LoadedPolicy:
    return load_policy(repo)


def oracle(policy: LoadedPolicy, cluster: str) -> DecisionTable:
    """A table that is only indexed (nothing compiled) on an engine of its own: its `direct` is one full
    evaluation of the pair's input."""
    return DecisionTable(policy, Decider(policy, make_engine("regorus"), cache_size=0), cluster)


def assert_same(keyed: RouteAnswer, direct: RouteAnswer) -> None:
    what = f"{keyed.source} -> {keyed.destination} opt_out={keyed.opt_out}"
    assert (keyed.allowed, keyed.clusters, keyed.warned, keyed.known) == (
        direct.allowed,
        direct.clusters,
        direct.warned,
        direct.known,
    ), what
    k, d = keyed.decision, direct.decision
    assert k.outcome == d.outcome and k.enforcement == d.enforcement, what
    assert k.violations == d.violations, what
    assert k.permitted_clusters == d.permitted_clusters and k.regimes == d.regimes, what
    assert (k.policy_revision, k.engine, k.input_digest) == (d.policy_revision, d.engine, d.input_digest), what


def sample_pairs(policy: LoadedPolicy, rng: random.Random, n: int) -> list[tuple[str, str, bool]]:
    services = sorted(policy.data["services"])
    with_transfers = sorted(s for s in policy.data["index"]["transfers"] if s != "*")
    pairs = [(rng.choice(services), rng.choice(services), rng.random() < 0.5) for _ in range(n)]
    pairs += [(rng.choice(services), s, rng.random() < 0.5) for s in with_transfers]  # every own transfer
    return pairs


def compare(table: DecisionTable, check: DecisionTable, pairs: list[tuple[str, str, bool]]) -> None:
    for source, destination, opt_out in pairs:
        keyed = table.lookup(ident(source), destination, opt_out)
        moment = datetime.strptime(keyed.moment, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert_same(keyed, check.direct(source, source, destination, opt_out, now=moment))


@pytest.mark.parametrize("cluster", ["eu-1", "us-1", "cn-1", "ca-1"])
def test_keyed_answers_equal_direct_decisions(policy: LoadedPolicy, cluster: str) -> None:
    decider = Decider(policy, make_engine("regorus"))
    table = DecisionTable.build(policy, decider, cluster)
    assert table.coverage.keyed and table.complete
    pairs = len(policy.data["services"]) ** 2 * 2
    assert table.size < pairs / 20  # far fewer evaluations than pairs
    assert table.evaluations == table.size == len(table.all_keys())
    rng = random.Random(f"keyed-{cluster}")
    compare(table, oracle(policy, cluster), sample_pairs(policy, rng, SAMPLE))
    assert table.evaluations == table.size  # every sampled pair came from a compiled key
    outcomes = {(a.allowed, a.warned, bool(a.decision.violations)) for a in table._pairs.values()}
    assert len(outcomes) >= 3  # the sample saw allowed, refused and warned routes
    assert {"GDPR", "PIPL", "CCPA"} <= {r for a in table._pairs.values() for r in a.decision.regimes}


def test_unknown_identities_and_hosts_are_keyed_and_exact(policy: LoadedPolicy) -> None:
    table = DecisionTable.build(policy, Decider(policy, make_engine("regorus")), "eu-1")
    check = oracle(policy, "eu-1")
    strangers = [
        "spiffe://acme.example/ns/team-0/sa/checkout-canary",  # classified like checkout-* by name
        "spiffe://acme.example/ns/shop/sa/profile-batch",
        "spiffe://other.example/job/7",  # no namespace/name: unregulated
    ]
    destinations = [*sorted(policy.data["services"])[:20], "team-9/unlisted"]  # a host outside services.yaml
    for stranger in strangers:
        for destination in destinations:
            for opt_out in (False, True):
                keyed = table.lookup(ident(stranger), destination, opt_out)
                assert not keyed.known
                moment = datetime.strptime(keyed.moment, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                workload = ident(stranger).workload
                assert_same(keyed, check.direct(stranger, workload, destination, opt_out, known=False, now=moment))


FREEZE = """package policyengine

# A change freeze: services whose name ends in -7 may not be called at all.
regime_violations contains v if {
	endswith(input.route.service, "-7")
	v := {
		"regime": "RESIDENCY",
		"rule": "change-freeze",
		"article": "acme change freeze",
		"message": sprintf("%s is frozen", [input.route.service]),
		"remedy": "wait for the freeze to end",
		"cluster": input.route.destination.cluster,
		"enforcement": "deny",
	}
}
"""

BY_JURISDICTION = """package policyengine

# Nothing goes to Switzerland, whatever the data (reads only what the key covers).
regime_violations contains v if {
	input.route.destination.jurisdiction == "CH"
	v := {
		"regime": "RESIDENCY",
		"rule": "no-ch",
		"article": "acme hosting policy",
		"message": "no Swiss hosting",
		"remedy": "pick another cluster",
		"cluster": input.route.destination.cluster,
		"enforcement": "deny",
	}
}
"""


def repo_with(base: Path, tmp_path: Path, name: str, module: str) -> LoadedPolicy:
    repo = tmp_path / "policies"
    shutil.copytree(base, repo)
    (repo / "rego").mkdir()
    (repo / "rego" / name).write_text(module)
    return load_policy(repo)


def test_a_module_reading_the_service_name_makes_every_pair_judged_on_its_own(repo: Path, tmp_path: Path) -> None:
    policy = repo_with(repo, tmp_path, "freeze.rego", FREEZE)
    table = DecisionTable.build(policy, Decider(policy, make_engine("regorus")), "eu-1")
    assert not table.coverage.keyed and "freeze.rego" in table.coverage.reason
    assert table.size == 0 and table.complete  # nothing shared: pairs are judged when asked
    frozen = sorted(s for s in policy.data["services"] if s.endswith("-7"))
    assert frozen
    rng = random.Random("freeze")
    pairs = sample_pairs(policy, rng, 60) + [(rng.choice(sorted(policy.data["services"])), s, False) for s in frozen]
    compare(table, oracle(policy, "eu-1"), pairs)
    assert table.evaluations == len(set(pairs))
    refused = table.lookup(ident(pairs[-1][0]), frozen[0], False)
    assert any(v.rule == "change-freeze" for v in refused.decision.violations)

    # The check is what keeps this exact: keyed anyway, a frozen service shares the key of one that is not.
    forced = DecisionTable(policy, Decider(policy, make_engine("regorus")), "eu-1")
    forced.coverage = Coverage(keyed=True)
    forced.compile()
    with pytest.raises(AssertionError):
        compare(forced, oracle(policy, "eu-1"), [(p[0], p[1], p[2]) for p in pairs[-len(frozen) :]] + pairs[:60])


def test_a_module_reading_only_covered_input_stays_keyed_and_exact(repo: Path, tmp_path: Path) -> None:
    policy = repo_with(repo, tmp_path, "no_ch.rego", BY_JURISDICTION)
    table = DecisionTable.build(policy, Decider(policy, make_engine("regorus")), "eu-1")
    assert table.coverage.keyed
    compare(table, oracle(policy, "eu-1"), sample_pairs(policy, random.Random("no-ch"), 120))


@pytest.mark.parametrize(
    ("module", "covered"),
    [
        ("package policyengine\nx if input.route.destination.regimes[_] == \"GDPR\"\n", True),
        ("package policyengine\nx if input.opt_out\n", True),
        ("package policyengine\nx if substring(input.time, 0, 10) > \"2026\"\n", True),
        ("package policyengine\nx if input.route.service == \"a/b\"\n", False),
        ("package policyengine\nx if input.route.source.workload == \"a/b\"\n", False),
        ("package policyengine\nx if input.route.via\n", False),
        ("package policyengine\nx if walk(input, _)\n", False),
        ("package policyengine\nimport input.route\nx if route.service\n", False),
        ("package policyengine\nx if data.policyengine.lib.service == \"a/b\"\n", False),
        ("package policyengine\nx if startswith(namespace, \"team\")\n", False),
        ("package policyengine.lib\nx if startswith(service, \"team\")\n", False),
        ("package policyengine\n# input.route.service in a comment\nx if true\n", True),
    ],
)
def test_static_check_of_what_a_module_reads(module: str, covered: bool) -> None:
    assert (uncovered_read("repo/rego/x.rego", module) is None) is covered


def test_reading_the_full_time_is_not_keyed() -> None:
    found = coverage({"repo/rego/x.rego": "package policyengine\nx if input.time > \"2026\"\n"})
    assert not found.keyed and "time" in found.reason


def test_an_answer_holds_for_its_day_a_transfer_expiring_tonight_stops_covering_tomorrow(tmp_path: Path) -> None:
    """The pitfall of compiled answers: one judged today must not outlive the day its mechanism expires."""
    repo = tmp_path / "policies"
    shutil.copytree(POLICIES, repo)
    now = datetime.now(UTC)
    transfers = yaml.safe_load((repo / "transfers.yaml").read_text())
    transfers["transfers"].append(
        {
            "id": "scc-checkout-us1-tonight",
            "type": "scc",
            "service": "shop/checkout",
            "destination": {"cluster": "us-1"},
            "expires": now.date().isoformat(),
        }
    )
    (repo / "transfers.yaml").write_text(yaml.safe_dump(transfers, sort_keys=False))
    policy = load_policy(repo)
    table = DecisionTable.build(policy, Decider(policy, make_engine("regorus")), "eu-1")
    caller = ident("spiffe://acme.example/ns/shop/sa/catalog")
    tonight = table.lookup(caller, "shop/checkout", False)
    assert "us-1" in tonight.clusters
    evaluations = table.evaluations
    table.clock = lambda: (now + timedelta(days=1)).timestamp()
    tomorrow = table.lookup(caller, "shop/checkout", False)
    assert table.evaluations == evaluations + 1  # judged again for the new day
    assert "us-1" not in tomorrow.clusters
    check = oracle(policy, "eu-1")
    moment = datetime.strptime(tomorrow.moment, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert_same(tomorrow, check.direct("shop/catalog", "shop/catalog", "shop/checkout", False, now=moment))


def _edit(repo: Path, name: str, change: object) -> None:
    path = repo / f"{name}.yaml"
    content = yaml.safe_load(path.read_text())
    change(content)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(content, sort_keys=False))


def test_a_reload_evaluates_only_the_keys_it_touches(repo: Path, tmp_path: Path) -> None:
    work = tmp_path / "policies"
    shutil.copytree(repo, work)
    routing = RoutingFilter("eu-1")
    first = load_policy(work)
    routing.install(Snapshot(first, Decider(first, make_engine("regorus"))))
    before = routing.table
    assert before is not None
    values = set(before.answers_by_value())

    def one_transfer(content: dict) -> None:  # renew the first own transfer to another date
        content["transfers"][0]["expires"] = "2031-01-31"

    def one_classification(content: dict) -> None:  # the members-* profile now declares more people
        rule = next(r for r in content["classifications"] if r["name"] == "members")
        rule["pipl"]["volume"] = 150000

    for name, change in (("transfers", one_transfer), ("classifications", one_classification)):
        _edit(work, name, change)
        policy = load_policy(work)
        routing.on_reload(Snapshot(policy, Decider(policy, make_engine("regorus"))))
        routing.wait_for_builds()
        after = routing.table
        assert after is not None and after.revision == policy.revision and after.complete
        touched = [k for k in after.all_keys() if after.key_value(k) not in values]
        assert 0 < len(touched) < after.size / 5, name
        assert after.evaluations == len(touched) and after.reused == after.size - len(touched), name
        assert routing.status() == {
            "complete": True,
            "revision": policy.revision,
            "services": SERVICES,
            "answers": after.size,
            "keyed": True,
        }
        compare(after, oracle(policy, "eu-1"), sample_pairs(policy, random.Random(name), 80))
        values = set(after.answers_by_value())


def test_routes_over_a_hundred_clusters_are_decided_not_refused_by_the_engine(tmp_path: Path) -> None:
    """regorus's compiled VM stops at 25,000 instructions, which some routes over 100 clusters exceeded
    while the rules ranged over every cluster's facts; such a route was refused as undecidable
    (engine-error) until the engine fell back to its interpreter (tests/rules/test_decide.py), and the
    rules now read the index's sets."""
    repo = write_repo(tmp_path / "policies", POLICIES, services=100, clusters=100)
    policy = load_policy(repo)
    table = DecisionTable.build(policy, Decider(policy, make_engine("regorus")), "eu-1")
    assert table.size == len(table.all_keys())  # an engine failure is not kept: every key would be there
    assert not [a for a in table._keyed.values() if any(v.rule == "engine-error" for v in a.decision.violations)]
    compare(table, oracle(policy, "eu-1"), sample_pairs(policy, random.Random("c100"), 40))
