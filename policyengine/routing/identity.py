"""Who is calling and whom: parse source identities and destination hosts from proxy headers.

A source is a SPIFFE ID (``spiffe://trust-domain/ns/<namespace>/sa/<account>``), given in a header the
proxy sets (``x-policyengine-source`` by default) or taken from ``x-forwarded-client-cert`` (XFCC, the
format Envoy defines): its ``URI=`` field, or else the SPIFFE URI SAN of its ``Cert=`` field (the
URL-encoded PEM of the verified client certificate, which nginx forwards as ``$ssl_client_escaped_cert``);
a ``namespace/name`` service name is accepted too. A destination is the
request's Host or ``:authority``. Nothing here looks at the policy: these functions only check shape, and
raise `RequestProblem` with what was wrong and what to send instead.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from dataclasses import dataclass

from cryptography import x509

# SPIFFE IDs may be 2048 bytes (SPIFFE ID spec, 2.3); the audit trail keeps callers of at most 512.
MAX_IDENTITY_LENGTH = 512
MAX_HOST_LENGTH = 253  # a DNS name
MAX_XFCC_LENGTH = 16384

_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_SERVICE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\.?$")


class RequestProblem(ValueError):
    """A request the filter cannot judge: `what` was wrong, `where` (which header), what to do."""

    def __init__(self, what: str, where: str, remedy: str) -> None:
        super().__init__(f"{where}: {what} ({remedy})")
        self.what = what
        self.where = where
        self.remedy = remedy


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    """A parsed caller: the raw value, and the namespace/name it names when the path says so."""

    value: str  # "spiffe://acme.example/ns/shop/sa/checkout" or "shop/checkout"
    namespace: str | None = None
    name: str | None = None

    @property
    def workload(self) -> str | None:
        """`namespace/name` when known from the identity itself."""
        if self.namespace and self.name:
            return f"{self.namespace}/{self.name}"
        return None


def parse_identity(raw: str, where: str) -> SourceIdentity:
    """Parse a SPIFFE ID or a `namespace/name`; raise `RequestProblem` for anything else."""
    value = raw.strip()
    if not value:
        raise RequestProblem("the source identity is empty", where, "send the caller's SPIFFE ID")
    if len(value) > MAX_IDENTITY_LENGTH:
        raise RequestProblem(
            f"the source identity is {len(value)} bytes, more than {MAX_IDENTITY_LENGTH} (the longest caller the "
            "audit trail keeps)",
            where,
            "send the caller's SPIFFE ID, not a certificate or a token",
        )
    if value.startswith("spiffe://"):
        return _parse_spiffe(value, where)
    if _SERVICE_NAME.match(value):
        namespace, name = value.split("/", 1)
        return SourceIdentity(value=value, namespace=namespace, name=name)
    raise RequestProblem(
        f"{_quote(value)} is neither a SPIFFE ID nor a namespace/name",
        where,
        "send spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> or <namespace>/<name>",
    )


def _parse_spiffe(value: str, where: str) -> SourceIdentity:
    rest = value[len("spiffe://") :]
    domain, _, path = rest.partition("/")
    remedy = "send spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>"
    if not domain or not _TRUST_DOMAIN.match(domain):
        raise RequestProblem(f"{_quote(value)} has no valid trust domain", where, remedy)
    if not path:
        raise RequestProblem(f"{_quote(value)} names a trust domain but no workload", where, remedy)
    segments = path.split("/")
    if any(not _PATH_SEGMENT.match(s) or s in (".", "..") for s in segments):
        raise RequestProblem(f"{_quote(value)} has an invalid path segment", where, remedy)
    namespace = name = None
    if len(segments) == 4 and segments[0] == "ns" and segments[2] == "sa":
        namespace, name = segments[1], segments[3]
    return SourceIdentity(value=value, namespace=namespace, name=name)


def identity_from_xfcc(header: str) -> str | None:
    """The SPIFFE URI of the nearest client in an `x-forwarded-client-cert` value, if it has one.

    Each proxy appends one comma-separated element (`By=...;Hash=...;URI=...`); the last one is the peer
    that connected to this proxy, so its `URI` is the caller (or, without one, the URI SAN of its
    `Cert`). Values may be double-quoted.
    """
    if len(header) > MAX_XFCC_LENGTH:
        raise RequestProblem(
            f"x-forwarded-client-cert is {len(header)} bytes, more than {MAX_XFCC_LENGTH}",
            "x-forwarded-client-cert",
            "forward only By, Hash, Subject and URI (Envoy set_current_client_cert_details: uri)",
        )
    elements = _split_outside_quotes(header, ",")
    if not elements:
        return None
    fields: dict[str, str] = {}
    for field in _split_outside_quotes(elements[-1], ";"):
        key, sep, val = field.partition("=")
        if sep:
            value = val.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"')
            fields.setdefault(key.strip().lower(), value)
    if fields.get("uri"):
        return fields["uri"]
    if fields.get("cert"):
        return uri_of_certificate(urllib.parse.unquote(fields["cert"]))
    return None


def uri_of_certificate(pem: str) -> str | None:
    """The SPIFFE URI SAN of a PEM certificate (else its first URI SAN); None when it has none."""
    uris = _certificate_uris(pem)
    if uris is None:
        raise RequestProblem(
            "the Cert= of x-forwarded-client-cert is not a PEM certificate",
            "x-forwarded-client-cert",
            "forward the verified client certificate URL-encoded (nginx: $ssl_client_escaped_cert)",
        )
    spiffe = [u for u in uris if u.startswith("spiffe://")]
    chosen = spiffe or list(uris)
    return chosen[0] if chosen else None


@functools.lru_cache(maxsize=1024)
def _certificate_uris(pem: str) -> tuple[str, ...] | None:
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(u) for u in names.get_values_for_type(x509.UniformResourceIdentifier))


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_host(raw: str, where: str) -> str:
    """The destination host of a Host or `:authority` value: lower case, without port or final dot."""
    value = raw.strip().lower()
    if not value:
        raise RequestProblem("the destination host is empty", where, "send the Host of the service called")
    if value.startswith("["):
        raise RequestProblem(
            f"{_quote(value)} is an IP address", where, "call the service by its DNS name so it can be judged"
        )
    host, _, port = value.partition(":")
    if port and not port.isdigit():
        raise RequestProblem(f"{_quote(value)} has an invalid port", where, "send host or host:port")
    host = host.rstrip(".")
    if len(host) > MAX_HOST_LENGTH or not _HOST.match(host):
        raise RequestProblem(
            f"{_quote(value)} is not a DNS name", where, "send the Host of the service called"
        )
    return host


def service_of_host(host: str) -> str | None:
    """`namespace/name` of a Kubernetes service DNS name (`name.namespace[.svc[.cluster.local]]`)."""
    labels = host.split(".")
    if len(labels) == 2 or (len(labels) >= 3 and labels[2] == "svc"):
        return f"{labels[1]}/{labels[0]}"
    return None


def _quote(value: str, limit: int = 80) -> str:
    shown = value if len(value) <= limit else value[:limit] + "..."
    return repr(shown)
