"""The examples directory: readable, schema-valid where a schema is available, covering every family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from policyengine.admission.extract import REGISTRY, extractors_for
from policyengine.admission.manifests import read_manifests

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REVIEWS = sorted((EXAMPLES / "admission").glob("*.json"))


def shop_documents() -> list[dict[str, Any]]:
    manifests = read_manifests([EXAMPLES / "shop"])
    assert manifests.problems == []
    return [dict(d.body) for d in manifests.documents]


def test_shop_examples_cover_every_extractor() -> None:
    used = {e for body in shop_documents() for e in extractors_for(body)}
    assert used == {e for extractors in REGISTRY.values() for e in extractors}


def test_core_kinds_validate_against_the_kubernetes_schema() -> None:
    version = kubernetes_validate.latest_version()
    core = [b for b in shop_documents() if b["apiVersion"] in ("v1", "apps/v1")]
    assert len(core) == 4
    for body in core:
        kubernetes_validate.validate(body, version, strict=True)


@pytest.mark.parametrize("path", REVIEWS, ids=[p.name for p in REVIEWS])
def test_admission_reviews_are_well_formed_v1_requests(path: Path) -> None:
    review = json.loads(path.read_text())
    assert (review["apiVersion"], review["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    request = review["request"]
    assert request["uid"] and request["namespace"] == "shop"
    obj = request["object"] if request["operation"] != "DELETE" else request["oldObject"]
    if request["operation"] == "DELETE":
        assert request["object"] is None
    assert obj["kind"] == request["kind"]["kind"] and obj["metadata"]["name"] == request["name"]
    group, version = request["kind"]["group"], request["kind"]["version"]
    assert obj["apiVersion"] == (f"{group}/{version}" if group else version)
    assert request["dryRun"] is path.name.startswith("dryrun-")


def test_admission_reviews_cover_the_documented_cases() -> None:
    requests = [json.loads(p.read_text())["request"] for p in REVIEWS]
    cases = {(r["operation"], r["kind"]["kind"], r["dryRun"]) for r in requests}
    assert {
        ("CREATE", "HTTPRoute", False),
        ("CREATE", "GlobalTrafficPolicy", False),
        ("CREATE", "Service", False),
        ("DELETE", "ServiceExport", False),
        ("CREATE", "HTTPRoute", True),
    } <= cases
