"""Data of mainland origin (issue #11): regimes by where data was collected or generated, not only by
whose it is. Important data of mainland origin is PIPL (DSL Art. 31) whoever it is about, and so is
what a CIIO collects there (CSL Art. 37); personal data of foreign subjects collected in the mainland
by a non-CIIO is not."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_fixtures import DEFAULT_REPO, TODAY, copy_repo, edit

from policyengine.policy import LoadedPolicy, PolicyError, load_policy

A = "residency.policyengine.io/"


@pytest.fixture(scope="module")
def policy() -> LoadedPolicy:
    return load_policy(DEFAULT_REPO, today=TODAY, bundled_rego=None)


@pytest.mark.parametrize(
    ("classes", "origin", "ciio", "regimes"),
    [
        (["important"], ["CN"], False, ("PIPL",)),  # important data of mainland origin, about no person
        (["important"], ["HK"], False, ()),  # Hong Kong is outside the mainland
        (["personal"], ["CN"], False, ()),  # foreign subjects' personal data: not PIPL by origin alone
        (["personal"], ["CN"], True, ("PIPL",)),  # ... unless a CIIO collected it (CSL Art. 37)
        (["important"], [], False, ()),
        ([], ["CN"], True, ()),
    ],
)
def test_regimes_by_origin(
    policy: LoadedPolicy, classes: list[str], origin: list[str], ciio: bool, regimes: tuple[str, ...]
) -> None:
    assert policy.regimes_for([], classes, origin, ciio) == regimes


def test_origin_from_rules_and_annotations(policy: LoadedPolicy) -> None:
    manifests = policy.classify("logistics", "manifests")
    assert (manifests.origin, manifests.subjects, manifests.regimes) == (("CN",), (), ("PIPL",))
    annotated = policy.classify("shop", "catalog", {}, {A + "data-classes": "important", A + "origin": "CN"})
    assert annotated.regimes == ("PIPL",)
    assert policy.annotation_problems({A + "origin": "XX"}) == [
        f"annotation {A}origin names unknown jurisdiction 'XX' "
        "(use an ISO code or group from jurisdictions.yaml, e.g. DE, EEA, US-CA)"
    ]


def test_unknown_origin_in_a_classification_is_an_error(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path)
    line = edit(repo / "classifications.yaml", "    origin: [CN]\n", "    origin: [ZZ]\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(repo, today=TODAY, bundled_rego=None)
    assert any(p.line == line and "origin" in p.message and "'ZZ'" in p.message for p in caught.value.problems), (
        caught.value.problems
    )
