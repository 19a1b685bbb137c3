"""Fixtures of the webhook tests: one real HTTPS server per module, with a policy repo that has a
namespace for each enforcement action (deny by default, rewrite in `shop` for GDPR, warn in `warned`,
dryrun in `sandbox`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Server, copy_policies, start_server

ENFORCEMENT = """default: deny
rules:
  - {regime: "*", namespaces: [sandbox], action: dryrun}
  - {regime: "*", namespaces: [warned], action: warn}
  - {regime: GDPR, namespaces: [shop], action: rewrite}
  - {regime: CCPA, namespaces: [analytics], action: warn}
"""


TEST_CLASSIFICATION = """classifications:
  - name: webhook-test-namespaces    # EEA personal data in the namespaces of the enforcement tests
    match: {namespaces: [warned, sandbox, payments]}
    data_classes: [personal]
    subjects: [EEA]
"""


def webhook_policies(tmp_path: Path) -> Path:
    policies = copy_policies(tmp_path)
    (policies / "enforcement.yaml").write_text(ENFORCEMENT)
    rules = policies / "classifications.yaml"
    rules.write_text(rules.read_text().replace("classifications:\n", TEST_CLASSIFICATION, 1))
    return policies


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("webhook")
    running = start_server(tmp, policies=webhook_policies(tmp))
    yield running
    running.stop()
