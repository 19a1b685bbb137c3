"""classify() and regimes_for(): annotations win, first matching rule per field, regimes from subjects."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_fixtures import DEFAULT_REPO, TODAY, edit

from policyengine.policy import LoadedPolicy, load_policy
from policyengine.route import DataProfile, PiplVolume

A = "residency.policyengine.io/"


@pytest.fixture(scope="module")
def policy() -> LoadedPolicy:
    return load_policy(DEFAULT_REPO, today=TODAY, bundled_rego=None)


@pytest.mark.parametrize(
    ("subjects", "classes", "regimes"),
    [
        (["EEA"], ["personal"], ("GDPR",)),
        (["DE"], ["personal"], ("GDPR",)),  # a member triggers like the group
        (["EU"], ["sensitive"], ("GDPR",)),
        (["NO"], ["personal"], ("GDPR",)),
        (["CH"], ["personal"], ()),  # adequate, but not EEA: not GDPR subjects
        (["CN"], ["important"], ("PIPL",)),
        (["HK"], ["personal"], ()),  # Hong Kong is outside PIPL
        (["MO"], ["personal"], ()),
        (["US-CA"], ["personal"], ("CCPA",)),
        (["US"], ["personal"], ()),  # US data is not necessarily Californian
        (["DE", "US-CA", "CN"], ["personal"], ("CCPA", "GDPR", "PIPL")),
        (["DE"], ["important"], ()),  # GDPR does not govern that class
        (["DE"], [], ()),
        ([], ["personal"], ()),
        (["XX"], ["personal"], ()),
    ],
)
def test_regimes_for(
    policy: LoadedPolicy, subjects: list[str], classes: list[str], regimes: tuple[str, ...]
) -> None:
    assert policy.regimes_for(subjects, classes) == regimes


def test_rules_match_namespace_and_name_globs(policy: LoadedPolicy) -> None:
    assert policy.classify("shop", "checkout-v2", {}, {}) == DataProfile(
        ("personal",), ("EEA",), ("GDPR",), None
    )
    assert policy.classify("shop", "profile", {}, {}) == DataProfile(
        ("personal", "sensitive"), ("CN",), ("PIPL",), PiplVolume(250000, 5000, False)
    )
    assert policy.classify("shop", "billing", {}, {}).regimes == ("CCPA",)
    assert policy.classify("shop", "catalog", {}, {}) == DataProfile()
    assert policy.classify("other", "checkout", {}, {}) == DataProfile()
    assert policy.classify("analytics", "anything", {}, {}).regimes == ("CCPA", "GDPR")


def test_annotations_win_over_rules(policy: LoadedPolicy) -> None:
    profile = policy.classify(
        "shop", "checkout", {}, {A + "subjects": "HK, US-CA", A + "data-classes": "personal"}
    )
    assert profile.subjects == ("HK", "US-CA") and profile.regimes == ("CCPA",)
    catalog = policy.classify(
        "shop",
        "catalog",
        {},
        {
            A + "subjects": "CN",
            A + "data-classes": "personal",
            A + "pipl-volume": "120000",
            A + "ciio": "true",
        },
    )
    assert catalog.regimes == ("PIPL",)
    assert catalog.pipl == PiplVolume(volume=120000, sensitive_volume=None, ciio=True)
    profile = policy.classify("shop", "profile", {}, {A + "pipl-sensitive-volume": "20000"})
    assert profile.pipl == PiplVolume(250000, 20000, False)  # only the annotated part changes


def test_unreadable_annotations_are_cautious_and_named(policy: LoadedPolicy) -> None:
    annotations = {
        A + "pipl-volume": "lots",
        A + "ciio": "maybe",
        A + "subjects": "CN, Narnia",
        A + "data-classes": "personel",
    }
    profile = policy.classify("shop", "profile", {}, annotations)
    assert profile.pipl == PiplVolume(None, 5000, True)
    problems = policy.annotation_problems(annotations)
    assert len(problems) == 4
    assert any("'Narnia'" in p for p in problems) and any("'personel'" in p for p in problems)
    assert policy.annotation_problems({A + "pipl-volume": "50000"}) == []


def test_first_matching_rule_per_field_and_labels(repo: Path) -> None:
    edit(
        repo / "classifications.yaml",
        "classifications:\n",
        (
            "classifications:\n"
            "  - name: labelled-pipl\n"
            "    match: {labels: {team: cn, tier: gold}}\n"
            "    pipl: {volume: 10}\n"
        ),
    )
    policy = load_policy(repo, today=TODAY, bundled_rego=None)
    both = policy.classify("shop", "profile", {"team": "cn", "tier": "gold"}, {})
    assert both.pipl == PiplVolume(10, None, False)  # first rule setting pipl
    assert both.subjects == ("CN",)  # from the next rule that sets subjects
    one_label = policy.classify("shop", "profile", {"team": "cn"}, {})
    assert one_label.pipl == PiplVolume(250000, 5000, False)  # every label must match


def test_answers_are_remembered_per_object_labels_and_annotations(policy: LoadedPolicy) -> None:
    first = policy.classify("shop", "checkout", {}, {})
    assert policy.classify("shop", "checkout", {}, {}) is first  # the second review is a lookup
    assert policy.classify("shop", "checkout", {}, {"example.com/owner": "team-a"}) is first  # not ours
    annotated = policy.classify("shop", "checkout", {}, {A + "subjects": "CN"})
    assert annotated.subjects == ("CN",) and annotated is not first
    assert policy.classify("shop", "checkout", {"tier": "gold"}, {}) == first  # no rule reads this label
    assert policy.classify("shop", "checkout-v2", {}, {}) is not first
