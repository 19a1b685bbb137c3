"""The default policy repo (policyengine/policies/) loads cleanly and compiles to the JSON Rego reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from policy_fixtures import DEFAULT_REPO, TODAY, line_of

import policyengine
from policyengine.policy import ClusterInfo, PolicyError, load_policy, modules
from policyengine.policy.modules import BUNDLED_REGO
from policyengine.resources import LIBRARY_MODULES

EU27 = [
    "AT",
    "BE",
    "BG",
    "HR",
    "CY",
    "CZ",
    "DK",
    "EE",
    "FI",
    "FR",
    "DE",
    "GR",
    "HU",
    "IE",
    "IT",
    "LV",
    "LT",
    "LU",
    "MT",
    "NL",
    "PL",
    "PT",
    "RO",
    "SK",
    "SI",
    "ES",
    "SE",
]


def test_loads_with_only_the_expired_scc_warning() -> None:
    policy = load_policy(DEFAULT_REPO, today=TODAY)
    assert [w.severity for w in policy.warnings] == ["warning"]
    warning = policy.warnings[0]
    assert warning.file.endswith("transfers.yaml")
    assert "scc-checkout-us1" in warning.message and "expired on 2026-09-30" in warning.message
    assert warning.line == line_of(DEFAULT_REPO / "transfers.yaml", "expires: 2026-09-30")
    assert policy.revision.startswith("sha256:") and len(policy.revision) == 7 + 64
    assert policy.data["revision"] == policy.revision


def test_jurisdictions_groups_and_membership() -> None:
    data = load_policy(DEFAULT_REPO, today=TODAY).data
    assert data["groups"]["EU"] == sorted(EU27)
    assert data["groups"]["EEA"] == sorted([*EU27, "IS", "LI", "NO"])
    assert data["jurisdictions"]["NO"]["in"] == ["EEA", "NO"]  # Norway stays "NO", never a boolean
    assert data["jurisdictions"]["DE"] == {"name": "Germany", "parent": None, "in": ["DE", "EEA", "EU"]}
    assert data["jurisdictions"]["US-CA"] == {"name": "California", "parent": "US", "in": ["US", "US-CA"]}
    for code in ("HK", "MO"):
        assert data["jurisdictions"][code]["parent"] is None
        assert "CN" not in data["jurisdictions"][code]["in"]
    for code in ("CH", "GB"):
        assert "EEA" not in data["jurisdictions"][code]["in"]


def test_regions_map_to_jurisdictions() -> None:
    regions = load_policy(DEFAULT_REPO, today=TODAY).data["regions"]
    assert len(regions) >= 40
    assert {r["provider"] for r in regions.values()} == {"aws", "gcp", "azure"}
    expected = {
        "aws/cn-north-1": "CN",
        "aws/cn-northwest-1": "CN",
        "azure/chinanorth3": "CN",
        "azure/chinaeast2": "CN",
        "aws/ap-east-1": "HK",
        "gcp/asia-east2": "HK",
        "azure/eastasia": "HK",
        "aws/us-west-1": "US-CA",
        "gcp/us-west2": "US-CA",
        "azure/westus": "US-CA",
        "aws/eu-west-2": "GB",
        "aws/eu-central-2": "CH",
        "aws/ap-northeast-1": "JP",
        "aws/ap-northeast-2": "KR",
        "aws/ca-central-1": "CA",
        "aws/sa-east-1": "BR",
        "aws/il-central-1": "IL",
        "azure/norwayeast": "NO",
        "gcp/europe-west1": "BE",
        "aws/eu-central-1": "DE",
    }
    assert {key: regions[key]["jurisdiction"] for key in expected} == expected
    assert all(r["location"] for r in regions.values())


def test_clusters_entities_and_lookups() -> None:
    policy = load_policy(DEFAULT_REPO, today=TODAY)
    assert policy.cluster_names() == ["ads-1", "cn-1", "eu-1", "eu-2", "hk-1", "partner-1", "us-1", "us-ca-1"]
    assert policy.cluster_info("eu-1") == ClusterInfo(
        "eu-1", "aws/eu-central-1", "DE", "acme", "eu-central-1/default/default/eu-1", "eu-central-1", "", "eu-1",
        "eu-1",
    )
    assert policy.cluster_by_kube_context("eu-1") == "eu-1" and policy.cluster_by_kube_context("prod-eu") is None
    assert policy.cluster_info("eu-9") is None
    assert policy.data["clusters"]["hk-1"]["jurisdiction"] == "HK"
    assert policy.data["clusters"]["us-ca-1"]["in"] == ["US", "US-CA"]
    assert policy.cluster_by_fsm_key("eastasia/default/default/hk-1") == "hk-1"
    assert policy.cluster_by_fsm_key("nowhere/default/default/x") is None
    assert policy.clusters_in_locality("eu-central-1/*") == ["eu-1"]
    assert policy.clusters_in_locality("eu-central-1/eu-central-1a/*") == ["eu-1"]
    assert policy.clusters_in_locality("us-*") == ["ads-1", "partner-1", "us-1", "us-ca-1"]
    assert len(policy.clusters_in_locality("*")) == 8
    entities = policy.data["entities"]
    assert entities["acme"] == {
        "name": "acme",
        "kind": "self",
        "self": True,
        "dpf_certified": False,
        "dpf_checked": "2026-10-01",
        "ca_commercial": True,
        "ccpa": None,
    }
    assert entities["northwind-analytics"]["dpf_certified"] is True
    assert entities["northwind-analytics"]["ccpa"]["role"] == "service_provider"
    assert entities["adnet"]["ccpa"]["role"] == "third_party"
    assert {e["kind"] for e in entities.values()} == {"self", "cloud", "partner"}


def test_regimes_compile_as_rego_expects() -> None:
    regimes = load_policy(DEFAULT_REPO, today=TODAY).data["regimes"]
    gdpr, pipl, ccpa = regimes["GDPR"], regimes["PIPL"], regimes["CCPA"]
    assert "DE" in gdpr["subjects"] and "NO" in gdpr["subjects"] and "CH" not in gdpr["home"]
    assert gdpr["adequacy"]["GB"] == {"condition": None, "expires": "2031-12-27"}
    assert gdpr["adequacy"]["US"] == {"condition": "dpf_certified", "expires": None}
    assert gdpr["adequacy"]["CA"]["condition"] == "ca_commercial"
    assert set(gdpr["adequacy"]) == set(
        ["AD", "AR", "FO", "GG", "IM", "IL", "JE", "NZ", "CH", "UY", "JP", "KR", "GB", "BR", "CA", "US"]
    )
    assert gdpr["articles"] == {
        "transfer": "GDPR Art. 44-46",
        "adequacy": "GDPR Art. 44-45",
        "mechanism": "GDPR Art. 46-47, 49",
    }
    assert gdpr["mechanisms"] == sorted(gdpr["mechanisms"]) and "scc" in gdpr["mechanisms"]
    assert pipl["home"] == ["CN"] and pipl["subjects"] == ["CN"]
    assert pipl["thresholds"] == {
        "exempt_below": 100000,
        "contract_below": 1000000,
        "sensitive_assessment_from": 10000,
    }
    assert pipl["articles"]["assessment"] == "PIPL Art. 40; CSL Art. 37; DSL Art. 31; CAC Order No. 16 Art. 7"
    assert pipl["articles"]["transfer"] == "PIPL Art. 38-39"
    assert ccpa["localisation"] is False and ccpa["subjects"] == ["US-CA"]
    assert ccpa["articles"] == {
        "contract": "Cal. Civ. Code 1798.100(d)",
        "opt_out": "Cal. Civ. Code 1798.120, 1798.135",
    }
    assert all(r["sources"] for r in regimes.values())
    assert load_policy(DEFAULT_REPO, today=TODAY).data["as_of"] == "2026-11-01"


def test_services_transfers_enforcement() -> None:
    policy = load_policy(DEFAULT_REPO, today=TODAY)
    checkout = policy.service("shop/checkout")
    assert checkout is not None and checkout.clusters == ("eu-1", "eu-2", "us-1")
    assert policy.service_by_identity("spiffe://acme.example/ns/shop/sa/profile") == "shop/profile"
    assert policy.service_by_host("billing.shop.svc.clusterset.local:8443") == "shop/billing"
    assert policy.service_by_host("unknown.example") is None
    catalog = policy.service("shop/catalog")
    assert catalog is not None and len(catalog.clusters) == 8
    transfers = {t["id"]: t for t in policy.data["transfers"]}
    assert transfers["scc-checkout-us1"]["destination"] == {
        "cluster": "us-1",
        "jurisdiction": None,
        "entity": None,
    }
    assert transfers["pipl-sc-profile-hk1"]["type"] == "pipl_standard_contract"
    assert policy.data["enforcement"]["default"] == "deny"
    assert {"regime": "GDPR", "namespaces": ["shop"], "action": "rewrite"} in policy.data["enforcement"][
        "rules"
    ]


def test_modules_are_keyed_by_relative_path(repo: Path, tmp_path: Path) -> None:
    bundled = tmp_path / "bundle" / "rego"
    (bundled / "sub").mkdir(parents=True)
    (bundled / "gdpr.rego").write_text("package policyengine.gdpr\n", encoding="utf-8")
    (bundled / "sub" / "x_test.rego").write_text("package policyengine.x_test\n", encoding="utf-8")
    (repo / "rego").mkdir()
    (repo / "rego" / "mine.rego").write_text("package policyengine.mine\n", encoding="utf-8")
    policy = load_policy(repo, today=TODAY, bundled_rego=bundled)
    assert sorted(policy.modules) == ["policies/rego/mine.rego", "rego/gdpr.rego", "rego/sub/x_test.rego"]
    assert policy.modules["rego/gdpr.rego"] == "package policyengine.gdpr\n"


def test_bundled_rego_is_the_packaged_rule_library() -> None:
    assert Path(policyengine.__file__).parent / "rules" == BUNDLED_REGO
    policy = load_policy(DEFAULT_REPO, today=TODAY)
    on_disk = sorted(f"rego/{p.relative_to(BUNDLED_REGO).as_posix()}" for p in BUNDLED_REGO.rglob("*.rego"))
    assert sorted(policy.modules) == on_disk
    # LIBRARY_MODULES is what an installed library is held to: it must list exactly what ships.
    assert sorted(f"rego/{name}" for name in LIBRARY_MODULES) == on_disk


def test_a_library_missing_a_module_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = tmp_path / "rules"
    shutil.copytree(BUNDLED_REGO, library)
    (library / "pipl.rego").unlink()
    monkeypatch.setattr(modules, "BUNDLED_REGO", library)  # as if this were the installed library
    with pytest.raises(PolicyError) as caught:
        load_policy(DEFAULT_REPO, today=TODAY, bundled_rego=library)
    assert "lacks pipl.rego" in str(caught.value)
    assert "10 of 11 modules" in str(caught.value)


def test_a_missing_library_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(DEFAULT_REPO, today=TODAY, bundled_rego=tmp_path / "nowhere")
    assert "the Rego rule library is missing" in str(caught.value)


def test_the_index_sets_hold_the_same_facts_as_the_per_cluster_index() -> None:
    """`index.sets` (what the rules read) and `index.regimes` (what explain and the evidence read) are two
    views of one computation; they must name the same clusters for every fact."""
    index = load_policy(DEFAULT_REPO, today=TODAY).data["index"]
    assert set(index["sets"]["clusters"]) == set(index["clusters"])
    assert set(index["sets"]["regimes"]) == set(index["regimes"])
    for regime, facts in index["regimes"].items():
        sets = index["sets"]["regimes"][regime]
        for name, fact in facts.items():
            assert (name in sets["home"]) is fact["home"], (regime, name)
            assert (name in sets["own"]) is fact["own"], (regime, name)
            adequate = [until for until, members in sets["adequate"].items() if name in members]
            assert adequate == ([fact["adequate_until"]] if fact["adequate_until"] else []), (regime, name)
            contract = [until for until, members in sets["contract"].items() if name in members]
            assert contract == ([fact["contract_until"]] if fact["contract_until"] else []), (regime, name)
            roles = [role for role, members in sets["roles"].items() if name in members]
            assert roles == ([fact["role"]] if fact["role"] is not None else []), (regime, name)
    assert index["sets"]["regimes"]["GDPR"]["adequate"], "the example has adequate clusters to check"
    assert index["sets"]["regimes"]["CCPA"]["roles"], "the example has CCPA roles to check"
