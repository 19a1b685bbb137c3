"""Shared parts of the routing tests: the default policy repo loaded on the real regorus engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from policyengine.decide import Decider
from policyengine.engine import make_engine
from policyengine.policy import LoadedPolicy, load_policy
from policyengine.resources import default_policies

REPO = Path(__file__).resolve().parents[2]
POLICIES = default_policies()

CHECKOUT = "spiffe://acme.example/ns/shop/sa/checkout"
PROFILE = "spiffe://acme.example/ns/shop/sa/profile"
BILLING = "spiffe://acme.example/ns/shop/sa/billing"
CATALOG = "spiffe://acme.example/ns/shop/sa/catalog"


@dataclass(frozen=True)
class Snapshot:
    """What the server hands a reload listener (policy and Decider), built from the real parts."""

    policy: LoadedPolicy
    decider: Decider


def snapshot_of(policies: Path = POLICIES) -> Snapshot:
    policy = load_policy(policies)
    return Snapshot(policy, Decider(policy, make_engine("regorus")))
