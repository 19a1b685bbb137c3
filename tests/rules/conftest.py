"""Fixtures for the core decision tests: the default policy and a Decider on the real regorus engine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from policyengine.decide import Decider
from policyengine.engine import make_engine
from policyengine.policy import LoadedPolicy, load_policy
from policyengine.resources import default_policies

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def policy() -> LoadedPolicy:
    return load_policy(default_policies())


@pytest.fixture(scope="session")
def decider(policy: LoadedPolicy) -> Decider:
    return Decider(policy, make_engine("regorus"))
