"""Pydantic models of the policy repo files, one root model per file (docs/policy-repo.md).

Every model forbids unknown keys. Names that refer to other files (a cluster's region, a regime's
subjects, ...) are plain strings here; the loader checks them against the other files.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_day(value: Any) -> Any:
    """Dates are written YYYY-MM-DD; anything else is a bad date with a clear message."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    text = str(value)
    if not isinstance(value, str) or not _DAY.match(text):
        raise ValueError(f"bad date {text!r} (write it as YYYY-MM-DD, e.g. 2027-03-31)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"bad date {text!r}: {exc} (write a real calendar date as YYYY-MM-DD)") from None


Day = Annotated[dt.date, BeforeValidator(_parse_day)]

Action = Literal["deny", "rewrite", "warn", "dryrun"]
EntityKind = Literal["self", "cloud", "saas", "partner"]
CcpaRole = Literal["service_provider", "contractor", "third_party"]
AdequacyCondition = Literal["dpf_certified", "ca_commercial"]
MechanismType = Literal[
    "scc",  # GDPR Art. 46(2)(c), Decision (EU) 2021/914
    "bcr",  # GDPR Art. 47
    "code_of_conduct",  # GDPR Art. 46(2)(e)
    "certification",  # GDPR Art. 46(2)(f)
    "ad_hoc_clauses",  # GDPR Art. 46(3)(a), authorised by the supervisory authority
    "pipl_standard_contract",  # PIPL Art. 38(1)(3), CAC Order No. 13
    "pipl_certification",  # PIPL Art. 38(1)(2), CAC/SAMR Order No. 20
    "cac_assessment",  # PIPL Art. 38(1)(1), 40; CAC Order No. 16 Art. 7
    "gba_standard_contract",  # Greater Bay Area (Mainland-HK/Macao) standard contract
    "ccpa_service_provider",  # Cal. Civ. Code 1798.140(ag), 11 CCR 7051
    "ccpa_contractor",  # Cal. Civ. Code 1798.140(j), 11 CCR 7051
    "ccpa_third_party",  # Cal. Civ. Code 1798.140(ai), 11 CCR 7053
]
MECHANISM_TYPES: tuple[str, ...] = MechanismType.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# jurisdictions.yaml


class Jurisdiction(_Strict):
    """A country or territory (ISO 3166-1 alpha-2) or a subdivision (ISO 3166-2, with a parent)."""

    code: str = Field(min_length=2, description="ISO 3166 code, e.g. DE or US-CA")
    name: str
    parent: str | None = Field(None, description="the jurisdiction this one is part of (US for US-CA)")


class JurisdictionsFile(_Strict):
    """jurisdictions.yaml: the places policy data may name, and groups of them."""

    jurisdictions: list[Jurisdiction] = []
    groups: dict[str, list[str]] = Field(
        {}, description="group name -> member jurisdictions or other groups (EEA: [EU, IS, LI, NO])"
    )


# regions.yaml


class Region(_Strict):
    """A cloud region and the jurisdiction it is in."""

    provider: str = Field(min_length=1, description="aws, gcp, azure, ...")
    code: str = Field(min_length=1, description="the region code, as in topology.kubernetes.io/region")
    jurisdiction: str
    location: str = ""

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.code}"


class RegionsFile(_Strict):
    """regions.yaml: cloud regions (provider/code) -> jurisdiction."""

    regions: list[Region] = []


# entities.yaml


class CcpaRecipient(_Strict):
    """An entity's role toward the business under the CCPA, and the contract that covers it."""

    role: CcpaRole
    contract: str | None = Field(None, description="reference of the written contract (1798.100(d))")
    expires: Day | None = None
    purposes: list[str] = Field([], description="the limited and specified purposes (11 CCR 7053)")


class Entity(_Strict):
    """A legal party that runs clusters or receives data."""

    name: str = Field(min_length=1)
    kind: EntityKind | None = Field(None, description="self | cloud | saas | partner (self when self: true)")
    is_self: bool = Field(False, alias="self", description="true for the business itself (exactly one)")
    dpf_certified: bool = Field(False, description="self-certified to the EU-US Data Privacy Framework")
    dpf_checked: Day | None = Field(None, description="when the DPF list was last checked")
    ca_commercial: bool = Field(False, description="a Canadian commercial organisation subject to PIPEDA")
    ccpa: CcpaRecipient | None = None
    description: str = ""

    @property
    def resolved_kind(self) -> str:
        return self.kind or ("self" if self.is_self else "partner")


class EntitiesFile(_Strict):
    """entities.yaml: the business, clouds, SaaS providers and partners."""

    entities: list[Entity] = []


# clusters.yaml


class Cluster(_Strict):
    """A cluster: where it is (by provider region) and who runs it."""

    name: str = Field(min_length=1)
    region: str = Field(description="provider/code from regions.yaml, e.g. aws/eu-central-1")
    entity: str = Field(description="the entity that runs it (entities.yaml)")
    fsm_key: str | None = Field(
        None, description="FSM cluster key; default <region code>/default/default/<name>"
    )
    locality: str | None = Field(None, description="Istio locality region; default the region code")
    network: str | None = Field(
        None, description="Istio network (topology.istio.io/network) of the cluster's endpoints, if any"
    )
    linkerd_link: str | None = Field(
        None, description="name of the Linkerd multicluster Link to it (mirrors are <svc>-<link>); default its name"
    )
    kube_context: str | None = Field(
        None,
        description="kubeconfig context that reaches this cluster (scan/simulate --context); default its name",
    )
    description: str = ""


class ClustersFile(_Strict):
    """clusters.yaml: every cluster of the set."""

    clusters: list[Cluster] = []


# regimes.yaml


class Adequacy(_Strict):
    """An adequacy decision: data may go to `jurisdiction` (if the receiving entity meets `condition`)."""

    jurisdiction: str
    condition: AdequacyCondition | None = Field(None, description="an entity flag the recipient must have")
    expires: Day | None = None


class PiplThresholds(_Strict):
    """CAC Order No. 16 thresholds, in individuals since 1 January of the current year."""

    exempt_below: int = Field(ge=0, description="non-sensitive PI below this (and no sensitive PI): exempt")
    contract_below: int = Field(ge=0, description="non-sensitive PI below this: contract or certification")
    sensitive_assessment_from: int = Field(ge=0, description="sensitive PI from this: CAC assessment")


class Regime(_Strict):
    """A data-residency regime: whose data triggers it, where the data may go, and how."""

    title: str = ""
    subjects: list[str] = Field(description="jurisdictions or groups whose residents' data triggers it")
    data_classes: list[str] = Field(description="data classes it governs (personal, sensitive, ...)")
    home: list[str] = Field([], description="where the data may always go (jurisdictions or groups)")
    localisation: bool = Field(True, description="false when the regime looks at recipients, not places")
    adequacy: list[Adequacy] = []
    origin: list[str] = Field(
        [], description="where data collected or generated falls under it whatever its subjects (DSL, CSL)"
    )
    origin_classes: list[str] = Field(
        [], description="data classes it governs by origin alone (important data: DSL Art. 31)"
    )
    ciio_origin_classes: list[str] = Field(
        [], description="data classes it governs by origin when a CIIO holds them (CSL Art. 37)"
    )
    mechanisms: list[MechanismType] = Field([], description="transfer types that count for this regime")
    thresholds: PiplThresholds | None = None
    articles: dict[str, str] = Field({}, description="article cited per rule kind (transfer, adequacy, ...)")
    sources: list[str] = []


class RegimesFile(_Strict):
    """regimes.yaml: the regimes and the date their facts were last checked."""

    as_of: Day = Field(description="when these facts were last checked (YYYY-MM-DD)")
    regimes: dict[str, Regime]


# classifications.yaml


class Selector(_Strict):
    """Which objects a classification rule matches; every given part must match."""

    namespaces: list[str] = Field([], description="namespace globs; empty matches every namespace")
    names: list[str] = Field([], description="object name globs; empty matches every name")
    labels: dict[str, str] = Field({}, description="labels that must all be present with these values")
    namespace_labels: dict[str, str] = Field(
        {},
        description="labels the object's namespace must all have with these values (from the live cluster's "
        "Namespace, or a Namespace among the manifests `check` reads)",
    )


class PiplDeclaration(_Strict):
    """What a service declares for PIPL's outbound thresholds."""

    volume: int | None = Field(
        None, ge=0, description="individuals whose non-sensitive PI leaves the mainland"
    )
    sensitive_volume: int | None = Field(None, ge=0, description="individuals whose sensitive PI leaves")
    ciio: bool = False


class Classification(_Strict):
    """A rule: objects matching `match` hold these data classes of these subjects."""

    name: str = Field(min_length=1)
    match: Selector = Selector()
    data_classes: list[str] | None = None
    subjects: list[str] | None = None
    origin: list[str] | None = Field(
        None, description="where the data was collected or generated (jurisdictions or groups)"
    )
    pipl: PiplDeclaration | None = None


class ClassificationsFile(_Strict):
    """classifications.yaml: selectors -> data classes, subjects, PIPL volumes."""

    classifications: list[Classification] = []


# services.yaml


class Service(_Strict):
    """A known service: where it runs, its workload identities and hosts."""

    name: str = Field(description="namespace/name")
    clusters: list[str] = []
    identities: list[str] = Field([], description="SPIFFE IDs of its workloads")
    hosts: list[str] = []

    @field_validator("name")
    @classmethod
    def _namespaced(cls, value: str) -> str:
        namespace, _, name = value.partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"service name {value!r} must be namespace/name, e.g. shop/checkout")
        return value


class ServicesFile(_Strict):
    """services.yaml: the services the runtime filter knows."""

    services: list[Service] = []


# transfers.yaml


class TransferDestination(_Strict):
    """Where a recorded mechanism lets data go: exactly one of cluster, jurisdiction, entity."""

    cluster: str | None = None
    jurisdiction: str | None = None
    entity: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TransferDestination:
        given = [v for v in (self.cluster, self.jurisdiction, self.entity) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of cluster, jurisdiction or entity")
        return self


class Transfer(_Strict):
    """A recorded transfer mechanism (SCC, PIPL standard contract, CCPA contract, ...)."""

    id: str = Field(min_length=1)
    type: MechanismType
    service: str = Field(description='namespace/name from services.yaml, or "*" for every service')
    destination: TransferDestination
    expires: Day | None = None
    reference: str = ""


class TransfersFile(_Strict):
    """transfers.yaml: the mechanisms on record."""

    transfers: list[Transfer] = []


# enforcement.yaml


class EnforcementRule(_Strict):
    """What a violation of `regime` does in the matching namespaces."""

    regime: str = Field(description='a regime name, or "*" for every regime')
    namespaces: list[str] = Field(["*"], description="namespace globs")
    action: Action


class EnforcementFile(_Strict):
    """enforcement.yaml: the action per regime and namespace; the first matching rule wins."""

    default: Action = "deny"
    rules: list[EnforcementRule] = []


FILE_MODELS: dict[str, type[BaseModel]] = {
    "jurisdictions": JurisdictionsFile,
    "regions": RegionsFile,
    "entities": EntitiesFile,
    "clusters": ClustersFile,
    "regimes": RegimesFile,
    "classifications": ClassificationsFile,
    "services": ServicesFile,
    "transfers": TransfersFile,
    "enforcement": EnforcementFile,
}
REQUIRED_FILES = ("regions", "clusters", "regimes")
