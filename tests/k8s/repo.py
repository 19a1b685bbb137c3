"""A copy of the default policy repo for the live-cluster tests: a classification rule on namespace labels
(`data-classification: personal` is GDPR data) and an EU-only service, shop/checkout-eu."""

from __future__ import annotations

import shutil
from pathlib import Path

from policyengine.resources import default_policies

LABEL_RULE = """classifications:
  - name: personal-namespaces
    match: {namespace_labels: {data-classification: personal}}
    data_classes: [personal]
    subjects: [EEA]
"""
EU_SERVICE = """services:
  - name: shop/checkout-eu
    clusters: [eu-1, eu-2]
"""


def policies(tmp_path: Path) -> Path:
    repo = tmp_path / "policies"
    shutil.copytree(default_policies(), repo)
    for name, addition, anchor in (
        ("classifications.yaml", LABEL_RULE, "classifications:\n"),
        ("services.yaml", EU_SERVICE, "services:\n"),
    ):
        path = repo / name
        text = path.read_text()
        assert anchor in text, f"{name} no longer starts its list with {anchor!r}"
        path.write_text(text.replace(anchor, addition, 1))
    return repo
