"""Each kind of policy problem is reported with the right file and line, and all of them at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_fixtures import TODAY, edit, errors_of, find, line_of

from policyengine.policy import PolicyError, check_policy, load_policy


def test_cluster_in_unknown_region_names_file_line_and_remedy(repo: Path) -> None:
    line = edit(repo / "clusters.yaml", "region: aws/eu-central-1", "region: aws/eu-west-9")
    problem = find(errors_of(repo), "unknown region")
    assert str(problem) == (
        f"{repo / 'clusters.yaml'}:{line}: cluster 'eu-1' names unknown region 'aws/eu-west-9' "
        "(add it to regions.yaml or fix the name)"
    )


def test_unknown_entity(repo: Path) -> None:
    line = edit(repo / "clusters.yaml", "entity: northwind-analytics", "entity: southwind")
    problem = find(errors_of(repo), "unknown entity 'southwind'")
    assert (problem.file, problem.line) == (str(repo / "clusters.yaml"), line)


def test_malformed_yaml(repo: Path) -> None:
    line = edit(
        repo / "regions.yaml", "{provider: aws, code: us-east-2,", "{provider: aws, code: [us-east-2,"
    )
    problems = errors_of(repo)
    problem = find(problems, "malformed YAML")
    assert problem.file == str(repo / "regions.yaml")
    assert problem.line is not None and line <= problem.line <= line + 1


def test_unknown_key_lists_the_allowed_keys(repo: Path) -> None:
    line = edit(repo / "clusters.yaml", "    locality: us-west2\n", "    localty: us-west2\n")
    problem = find(errors_of(repo), "unknown key 'localty'")
    assert problem.line == line
    assert (
        "clusters[3]" in problem.message
        and "allowed: name, region, entity, fsm_key, locality" in problem.message
    )


def test_wrong_type(repo: Path) -> None:
    line = edit(repo / "classifications.yaml", "volume: 250000", "volume: lots")
    problem = find(errors_of(repo), "classifications[1].pipl.volume")
    assert (problem.file, problem.line) == (str(repo / "classifications.yaml"), line)


@pytest.mark.parametrize(
    ("file", "old", "new", "words"),
    [
        (
            "regions.yaml",
            "code: eu-west-3, jurisdiction: FR",
            "code: eu-west-3, jurisdiction: FX",
            ("region 'aws/eu-west-3'", "unknown jurisdiction 'FX'"),
        ),
        ("jurisdictions.yaml", "EEA: [EU, IS, LI,", "EEA: [EU, IS, XL,", ("group 'EEA'", "'XL'")),
        ("regimes.yaml", "{jurisdiction: NZ}", "{jurisdiction: NZL}", ("regime 'GDPR' adequacy", "'NZL'")),
        ("regimes.yaml", "subjects: [US-CA]", "subjects: [US-CAL]", ("regime 'CCPA' subjects", "'US-CAL'")),
        (
            "classifications.yaml",
            "subjects: [CN]",
            "subjects: [PRC]",
            ("classification 'shop-profile'", "'PRC'"),
        ),
        (
            "transfers.yaml",
            "destination: {cluster: hk-1}",
            "destination: {jurisdiction: HKG}",
            ("transfer 'pipl-sc-profile-hk1'", "unknown jurisdiction 'HKG'"),
        ),
    ],
)
def test_unknown_jurisdiction(repo: Path, file: str, old: str, new: str, words: tuple[str, ...]) -> None:
    line = edit(repo / file, old, new)
    problem = find(errors_of(repo), *words)
    assert (problem.file, problem.line) == (str(repo / file), line)


def test_region_in_a_group_is_not_a_jurisdiction(repo: Path) -> None:
    line = edit(
        repo / "regions.yaml", "code: eu-west-1, jurisdiction: IE", "code: eu-west-1, jurisdiction: EU"
    )
    assert find(errors_of(repo), "names group 'EU'").line == line


@pytest.mark.parametrize(
    ("file", "anchor", "duplicate", "words"),
    [
        (
            "jurisdictions.yaml",
            "  - {code: MT, name: Malta}\n",
            "  - {code: DE, name: Deutschland}\n",
            ("duplicate jurisdiction code 'DE'",),
        ),
        (
            "regions.yaml",
            "  - {provider: aws, code: us-east-2,",
            "  - {provider: aws, code: us-east-1, jurisdiction: US, location: again}\n",
            ("duplicate region 'aws/us-east-1'",),
        ),
        (
            "clusters.yaml",
            "  - name: eu-2\n",
            "  - name: eu-1\n    region: aws/eu-west-1\n    entity: acme\n",
            ("duplicate cluster 'eu-1'",),
        ),
        (
            "transfers.yaml",
            "  - id: ccpa-tp-billing-adnet\n",
            "  - id: scc-checkout-us1\n    type: scc\n"
            "    service: shop/checkout\n    destination: {cluster: us-1}\n",
            ("duplicate transfer id",),
        ),
        ("entities.yaml", "  - name: gcp\n", "  - name: aws\n    kind: cloud\n", ("duplicate entity 'aws'",)),
    ],
)
def test_duplicates(repo: Path, file: str, anchor: str, duplicate: str, words: tuple[str, ...]) -> None:
    line = edit(repo / file, anchor, duplicate + anchor)
    problem = find(errors_of(repo), *words)
    assert (problem.file, problem.line) == (str(repo / file), line)
    assert "first at line" in problem.message


def test_duplicate_yaml_key(repo: Path) -> None:
    line = edit(
        repo / "regimes.yaml", "  CCPA:\n", "  GDPR:\n    subjects: []\n    data_classes: []\n  CCPA:\n"
    )
    assert find(errors_of(repo), "duplicate key 'GDPR'").line == line


@pytest.mark.parametrize(
    ("file", "old", "new", "words"),
    [
        ("transfers.yaml", "expires: 2028-06-30", "expires: 2028-02-30", ("bad date '2028-02-30'",)),
        ("regimes.yaml", "as_of: 2026-11-01", "as_of: 1 Nov 2026", ("as_of", "bad date '1 Nov 2026'")),
        ("regimes.yaml", "expires: 2031-12-27", "expires: 2031-12-7", ("bad date '2031-12-7'", "YYYY-MM-DD")),
    ],
)
def test_bad_dates(repo: Path, file: str, old: str, new: str, words: tuple[str, ...]) -> None:
    line = edit(repo / file, old, new)
    problem = find(errors_of(repo), *words)
    assert (problem.file, problem.line) == (str(repo / file), line)


def test_unknown_regime_and_action_in_enforcement(repo: Path) -> None:
    regime_line = edit(
        repo / "enforcement.yaml", "{regime: GDPR, namespaces: [shop]", "{regime: GPDR, namespaces: [shop]"
    )
    action_line = edit(repo / "enforcement.yaml", "action: warn}", "action: block}")
    problems = errors_of(repo)
    assert find(problems, "unknown regime 'GPDR'").line == regime_line
    action = find(problems, "unknown value 'block'")
    assert action.line == action_line and "'deny'" in action.message


def test_unknown_mechanism_type(repo: Path) -> None:
    regime_line = edit(repo / "regimes.yaml", "mechanisms: [scc, bcr,", "mechanisms: [scc, bcrs,")
    problem = find(errors_of(repo), "regimes.GDPR.mechanisms[1]", "'bcrs'")
    assert problem.line == regime_line


def test_transfer_type_no_regime_lists(repo: Path) -> None:
    edit(repo / "regimes.yaml", "mechanisms: [pipl_standard_contract, ", "mechanisms: [")
    problem = find(errors_of(repo), "'pipl_standard_contract', which no regime lists")
    assert problem.line == line_of(repo / "transfers.yaml", "type: pipl_standard_contract")


def test_transfer_unknown_cluster_and_service(repo: Path) -> None:
    cluster_line = edit(
        repo / "transfers.yaml", "destination: {cluster: us-1}", "destination: {cluster: us-9}"
    )
    service_line = edit(repo / "transfers.yaml", "service: shop/profile", "service: shop/profiles")
    problems = errors_of(repo)
    assert find(problems, "unknown cluster 'us-9'").line == cluster_line
    assert find(problems, "unknown service 'shop/profiles'").line == service_line


def test_service_unknown_cluster(repo: Path) -> None:
    line = edit(repo / "services.yaml", "clusters: [cn-1, hk-1]", "clusters: [cn-1, hk-2]")
    assert find(errors_of(repo), "service 'shop/profile'", "unknown cluster 'hk-2'").line == line


def test_every_problem_is_reported_at_once(repo: Path) -> None:
    edit(repo / "clusters.yaml", "region: aws/eu-central-1", "region: aws/eu-west-9")
    edit(repo / "clusters.yaml", "entity: adnet", "entity: adnett")
    edit(repo / "regions.yaml", "jurisdiction: FR", "jurisdiction: FX")
    edit(repo / "transfers.yaml", "expires: 2027-06-30", "expires: never")
    edit(repo / "enforcement.yaml", "default: deny", "default: refuse")
    edit(repo / "services.yaml", "clusters: [cn-1, hk-1]", "clusters: [cn-1, hk-2]")
    with pytest.raises(PolicyError) as caught:
        load_policy(repo, today=TODAY, bundled_rego=None)
    error = caught.value
    files = {Path(p.file).name for p in error.errors}
    assert files == {"clusters.yaml", "regions.yaml", "transfers.yaml", "enforcement.yaml", "services.yaml"}
    assert len(error.errors) == 6
    assert len(str(error).splitlines()) == len(error.problems)  # one line per problem, warnings included
    assert any(
        line.endswith("(renew it and update expires, or remove it)") and ": warning: " in line
        for line in str(error).splitlines()
    )


def test_missing_required_file_and_missing_directory(repo: Path, tmp_path: Path) -> None:
    (repo / "regions.yaml").unlink()
    problems = errors_of(repo)
    find(problems, "regions.yaml is required")
    assert any("unknown region" in p.message for p in problems)  # clusters are still checked
    policy, problems = check_policy(tmp_path / "nowhere", today=TODAY)
    assert policy is None and "policy directory not found" in problems[0].message


def test_norway_and_yes_are_strings_not_booleans(repo: Path) -> None:
    edit(repo / "jurisdictions.yaml", 'EEA: [EU, IS, LI, "NO"]', "EEA: [EU, IS, LI, NO]")
    policy = load_policy(repo, today=TODAY, bundled_rego=None)
    assert "NO" in policy.data["groups"]["EEA"]


def test_warnings_do_not_stop_loading(repo: Path) -> None:
    edit(repo / "regimes.yaml", "as_of: 2026-11-01", "as_of: 2025-01-01")
    policy = load_policy(repo, today=TODAY, bundled_rego=None)
    stale = find(list(policy.warnings), "as_of 2025-01-01 is more than a year old")
    assert stale.line == line_of(repo / "regimes.yaml", "as_of:")
    expired_adequacy = edit(repo / "regimes.yaml", "expires: 2031-12-27", "expires: 2026-01-01")
    policy = load_policy(repo, today=TODAY, bundled_rego=None)
    assert find(list(policy.warnings), "adequacy decision for GB expired").line == expired_adequacy
