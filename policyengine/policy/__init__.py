"""The policy repo: pydantic models of its YAML files, a loader with file:line problems, the compiled
data Rego reads, the revision hash, and data classification (docs/policy-repo.md).
"""

from policyengine.policy.classification import Classifier
from policyengine.policy.loaded import ClusterInfo, LoadedPolicy, ServiceInfo
from policyengine.policy.loader import check_policy, load_policy
from policyengine.policy.problems import PolicyError, Problem

__all__ = [
    "Classifier",
    "ClusterInfo",
    "LoadedPolicy",
    "PolicyError",
    "Problem",
    "ServiceInfo",
    "check_policy",
    "load_policy",
]
