"""Residency tags: labels and annotations that say which regimes govern a workload's data.

For Services, Deployments, StatefulSets and ServiceExports the tags are

- label `residency.policyengine.io/<regime lowercase>: "true"` per regime,
- label `residency.policyengine.io/home: <where the data lives>` (EEA, CN, US-CA; `_` between several),
- annotations `residency.policyengine.io/regimes`, `.../data-classes` (as derived) and
  `.../policy-revision`.

Tags are recomputed from the declaring annotations and the classification rules every time, never read
back: a hand-edited residency label is replaced or removed, so it cannot opt a service out. `tag_patch`
returns only what is missing or different, so tagging a tagged object yields an empty patch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from policyengine.admission.extract import fsm, mcs
from policyengine.admission.extract.crossing import JsonPatch
from policyengine.admission.extract.patch import remove_metadata_entries, set_metadata_entries
from policyengine.admission.extract.shape import group_of, metadata_map, name_of, namespace_of
from policyengine.observed import NOTHING_OBSERVED, Observations
from policyengine.route import DataProfile

PREFIX = "residency.policyengine.io/"
HOME_LABEL = PREFIX + "home"
REGIMES_ANNOTATION = PREFIX + "regimes"
DATA_CLASSES_ANNOTATION = PREFIX + "data-classes"
REVISION_ANNOTATION = PREFIX + "policy-revision"

TAGGED_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Service"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        (mcs.GROUP, "ServiceExport"),
        *((g, "ServiceExport") for g in fsm.GROUPS),
    }
)


class TaggingPolicy(Protocol):
    """What tagging needs of the loaded policy: classification, the revision, and the regime data."""

    @property
    def revision(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...

    def classify(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        namespace_labels: Mapping[str, str] | None = None,
    ) -> DataProfile: ...


@dataclass(frozen=True, slots=True)
class ResidencyTags:
    """The labels and annotations an object should carry, and the profile they come from."""

    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    profile: DataProfile = field(default_factory=DataProfile)


def is_tagged_kind(manifest: Mapping[str, Any]) -> bool:
    """Whether the object's (group, kind) gets residency tags."""
    return (group_of(manifest), str(manifest.get("kind", ""))) in TAGGED_KINDS


def _place(places: Sequence[str], groups: Mapping[str, Sequence[str]]) -> str:
    """One name for a set of jurisdictions: itself when single, the group with exactly these members."""
    wanted = set(places)
    if len(wanted) == 1:
        return next(iter(wanted))
    for group in sorted(groups, key=lambda g: (len(groups[g]), g)):
        if set(groups[group]) == wanted:
            return group
    return "_".join(sorted(wanted))


def home_of(profile: DataProfile, data: Mapping[str, Any]) -> str:
    """Where the data lives: each regime's home (its subjects when it does not localise), `_`-joined."""
    regimes = data.get("regimes") or {}
    groups = data.get("groups") or {}
    homes = set()
    for regime in profile.regimes:
        facts = regimes.get(regime) or {}
        home = list(facts.get("home") or [])
        if not home or facts.get("localisation", True) is False:
            home = list(facts.get("subjects") or profile.subjects)
        if home:
            homes.add(_place(home, groups))
    return "_".join(sorted(homes))


def residency_tags(
    manifest: Mapping[str, Any], policy: TaggingPolicy, observations: Observations = NOTHING_OBSERVED
) -> ResidencyTags:
    """The tags the object should carry under `policy` (computed, never read from existing tags), its
    namespace's observed labels counting for classification as in evaluation."""
    labels = {str(k): str(v) for k, v in metadata_map(manifest, "labels").items()}
    annotations = {str(k): str(v) for k, v in metadata_map(manifest, "annotations").items()}
    namespace = namespace_of(manifest)
    profile = policy.classify(namespace, name_of(manifest), labels, annotations, observations.labels_of(namespace))
    want_labels = {f"{PREFIX}{r.lower()}": "true" for r in profile.regimes}
    want_annotations = {REVISION_ANNOTATION: policy.revision}
    if profile.regimes:
        want_labels[HOME_LABEL] = home_of(profile, policy.data)[:63]
        want_annotations[REGIMES_ANNOTATION] = ",".join(profile.regimes)
    if profile.data_classes:
        want_annotations[DATA_CLASSES_ANNOTATION] = ",".join(profile.data_classes)
    return ResidencyTags(want_labels, want_annotations, profile)


def tag_patch(
    manifest: Mapping[str, Any], policy: TaggingPolicy, observations: Observations = NOTHING_OBSERVED
) -> JsonPatch:
    """RFC 6902 operations that bring the object's residency tags up to date ([] when they are)."""
    if not is_tagged_kind(manifest):
        return []
    tags = residency_tags(manifest, policy, observations)
    labels = metadata_map(manifest, "labels")
    annotations = metadata_map(manifest, "annotations")
    stale_labels = [k for k in labels if str(k).startswith(PREFIX) and k not in tags.labels]
    stale_annotations = [REGIMES_ANNOTATION] if REGIMES_ANNOTATION not in tags.annotations else []
    patch: JsonPatch = []
    patch += remove_metadata_entries(manifest, "labels", stale_labels)
    patch += set_metadata_entries(manifest, "labels", tags.labels)
    patch += remove_metadata_entries(
        manifest, "annotations", [k for k in stale_annotations if k in annotations]
    )
    patch += set_metadata_entries(manifest, "annotations", tags.annotations)
    return patch
