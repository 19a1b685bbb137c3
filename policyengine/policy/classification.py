"""What data an object holds: annotations first, then the first matching classification rule per field.

`Classifier.classify(namespace, name, labels, annotations)` returns a `DataProfile` whose regimes are
derived from subjects, origin and data classes: a regime applies when the data holds one of its
classes and a subject is (or contains, or lies within) one of its subject jurisdictions, or when the
data was collected or generated in one of its `origin` places and holds one of its `origin_classes`
(or, held by a CIIO, one of its `ciio_origin_classes`): important data of mainland origin falls under
China's DSL whoever it is about. EEA and DE both trigger GDPR; HK does not trigger PIPL.

Annotation values never raise here: a value that cannot be read is treated the cautious way (an
unreadable volume is undeclared, an unreadable `ciio` is true) and `annotation_problems()` names it so
callers can warn.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

from policyengine.policy.geography import Geography
from policyengine.policy.models import Classification, PiplDeclaration, Regime, Selector
from policyengine.route import DataProfile, PiplVolume

ANNOTATION_PREFIX = "residency.policyengine.io/"
DATA_CLASSES = ANNOTATION_PREFIX + "data-classes"
SUBJECTS = ANNOTATION_PREFIX + "subjects"
PIPL_VOLUME = ANNOTATION_PREFIX + "pipl-volume"
PIPL_SENSITIVE_VOLUME = ANNOTATION_PREFIX + "pipl-sensitive-volume"
CIIO = ANNOTATION_PREFIX + "ciio"
ORIGIN = ANNOTATION_PREFIX + "origin"
PROFILE_CACHE_SIZE = 8192

Labels = frozenset[tuple[str, str]]
ProfileKey = tuple[str, str, Labels, Labels, Labels]


def _comma_list(value: str) -> tuple[str, ...]:
    return tuple(sorted({part.strip() for part in value.split(",") if part.strip()}))


def _volume(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().replace("_", "")
    return int(text) if text.isdigit() else None


def _ciio(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() != "false"


def selector_matches(
    selector: Selector,
    namespace: str,
    name: str,
    labels: Mapping[str, str],
    namespace_labels: Mapping[str, str] | None = None,
) -> bool:
    """Namespaces and names are globs (empty = any); every label (and every namespace label) must be
    present with its value. A namespace whose labels are not known has none."""
    namespace_labels = namespace_labels or {}
    if any(namespace_labels.get(key) != value for key, value in selector.namespace_labels.items()):
        return False
    if selector.namespaces and not any(fnmatch.fnmatchcase(namespace, p) for p in selector.namespaces):
        return False
    if selector.names and not any(fnmatch.fnmatchcase(name, p) for p in selector.names):
        return False
    return all(labels.get(key) == value for key, value in selector.labels.items())


class Classifier:
    """Classification rules and regimes of one loaded policy."""

    def __init__(self, rules: Iterable[Classification], regimes: Mapping[str, Regime], geography: Geography):
        self.rules = tuple(rules)
        self.geography = geography
        self._regime_subjects = {name: set(geography.expand(r.subjects)) for name, r in regimes.items()}
        self._regime_classes = {name: set(r.data_classes) for name, r in regimes.items()}
        self._regime_origin = {name: set(geography.expand(r.origin)) for name, r in regimes.items()}
        self._origin_classes = {name: set(r.origin_classes) for name, r in regimes.items()}
        self._ciio_origin_classes = {name: set(r.ciio_origin_classes) for name, r in regimes.items()}
        self._by_namespace_labels = any(r.match.namespace_labels for r in self.rules)
        self._profiles: dict[ProfileKey, DataProfile] = {}

    def _subject_places(self, subject: str) -> set[str]:
        """Every jurisdiction a subject stands for or lies within (a group stands for its members)."""
        places: set[str] = set()
        for code in self.geography.expand([subject]):
            places.update(self.geography.ancestors(code))
        return places

    def regimes_for(
        self,
        subjects: Iterable[str],
        data_classes: Iterable[str],
        origin: Iterable[str] = (),
        ciio: bool = False,
    ) -> tuple[str, ...]:
        """Sorted names of the regimes that govern data of these classes about these subjects, collected
        or generated in `origin` (held by a CIIO when `ciio`)."""
        classes = set(data_classes)
        places: set[str] = set()
        for subject in subjects:
            places.update(self._subject_places(subject))
        origins: set[str] = set()
        for place in origin:
            origins.update(self._subject_places(place))
        governed = set()
        for name, regime_subjects in self._regime_subjects.items():
            if classes & self._regime_classes[name] and places & regime_subjects:
                governed.add(name)
            by_origin = self._origin_classes[name] | (self._ciio_origin_classes[name] if ciio else set())
            if classes & by_origin and origins & self._regime_origin[name]:
                governed.add(name)
        return tuple(sorted(governed))

    def classify(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> DataProfile:
        """The data profile of object `namespace/name`: annotations win, else the first rule per field.

        `namespace_labels` are the labels of its namespace (as observed), for rules that match
        `namespace_labels`. Answers are remembered (the rules never change for one classifier): the
        same object reviewed again costs a dict lookup instead of a glob match against every rule. The
        namespace labels are part of that key when a rule reads them, so a label change reclassifies."""
        labels = labels or {}
        ours = {k: v for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX)} if annotations else {}
        ns_labels = namespace_labels if namespace_labels and self._by_namespace_labels else {}
        key = (namespace, name, frozenset(labels.items()), frozenset(ours.items()), frozenset(ns_labels.items()))
        profile = self._profiles.get(key)
        if profile is None:
            profile = self._classify(namespace, name, labels, ours, ns_labels)
            if len(self._profiles) >= PROFILE_CACHE_SIZE:
                self._profiles.clear()  # a bound, not an LRU: a policy sees few distinct objects
            self._profiles[key] = profile
        return profile

    def _classify(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        namespace_labels: Mapping[str, str],
    ) -> DataProfile:
        matching = [r for r in self.rules if selector_matches(r.match, namespace, name, labels, namespace_labels)]
        data_classes = (
            _comma_list(annotations[DATA_CLASSES])
            if DATA_CLASSES in annotations
            else next((tuple(sorted(set(r.data_classes))) for r in matching if r.data_classes is not None), ())
        )
        subjects = (
            _comma_list(annotations[SUBJECTS])
            if SUBJECTS in annotations
            else next((tuple(sorted(set(r.subjects))) for r in matching if r.subjects is not None), ())
        )
        origin = (
            _comma_list(annotations[ORIGIN])
            if ORIGIN in annotations
            else next((tuple(sorted(set(r.origin))) for r in matching if r.origin is not None), ())
        )
        declared = next((r.pipl for r in matching if r.pipl is not None), None)
        pipl = self._pipl(declared, annotations)
        return DataProfile(
            data_classes=data_classes,
            subjects=subjects,
            regimes=self.regimes_for(subjects, data_classes, origin, ciio=pipl is not None and pipl.ciio),
            pipl=pipl,
            origin=origin,
        )

    @staticmethod
    def _pipl(declared: PiplDeclaration | None, annotations: Mapping[str, str]) -> PiplVolume | None:
        keys = (PIPL_VOLUME, PIPL_SENSITIVE_VOLUME, CIIO)
        if declared is None and not any(k in annotations for k in keys):
            return None
        volume = declared.volume if declared else None
        sensitive = declared.sensitive_volume if declared else None
        ciio = declared.ciio if declared else False
        if PIPL_VOLUME in annotations:
            volume = _volume(annotations[PIPL_VOLUME])
        if PIPL_SENSITIVE_VOLUME in annotations:
            sensitive = _volume(annotations[PIPL_SENSITIVE_VOLUME])
        annotated_ciio = _ciio(annotations.get(CIIO))
        if annotated_ciio is not None:
            ciio = annotated_ciio
        return PiplVolume(volume=volume, sensitive_volume=sensitive, ciio=ciio)

    def annotation_problems(self, annotations: Mapping[str, str]) -> list[str]:
        """Residency annotations that cannot be read as written, each with what to write instead."""
        problems: list[str] = []
        for key in (PIPL_VOLUME, PIPL_SENSITIVE_VOLUME):
            if key in annotations and _volume(annotations[key]) is None:
                problems.append(
                    f"annotation {key}={annotations[key]!r} is not a whole number "
                    '(write the count of individuals, e.g. "50000"); treated as undeclared'
                )
        if CIIO in annotations and annotations[CIIO].strip().lower() not in ("true", "false"):
            problems.append(f'annotation {CIIO}={annotations[CIIO]!r} is not "true" or "false"; treated as true')
        for key in (SUBJECTS, ORIGIN):
            for place in _comma_list(annotations.get(key, "")):
                if not self.geography.known(place):
                    problems.append(
                        f"annotation {key} names unknown jurisdiction {place!r} "
                        "(use an ISO code or group from jurisdictions.yaml, e.g. DE, EEA, US-CA)"
                    )
        if DATA_CLASSES in annotations:
            known = set().union(*self._regime_classes.values(), *self._origin_classes.values())
            for data_class in _comma_list(annotations[DATA_CLASSES]):
                if data_class not in known:
                    problems.append(
                        f"annotation {DATA_CLASSES} names data class {data_class!r}, which no "
                        f"regime governs (known: {', '.join(sorted(known))})"
                    )
        return problems
