"""policyengine: compliance-aware traffic policy engine for multi-cluster Kubernetes."""

__version__ = "0.1.0"
