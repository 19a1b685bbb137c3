"""Who may call what: client certificates and bearer tokens, checked per audience.

Three audiences, each configured by `policyengine serve` flags (Gatekeeper's `--client-ca-name` and
`--client-cn-name` are the model for the first):

- `webhook` (`/mutate`, `/validate`): with `--client-ca FILE`, only a client certificate issued by a CA
  in FILE (the one the API server presents to webhooks), and with `--client-cn NAME` only one whose
  subject common name is NAME (the API server's is usually `kube-apiserver`).
- `api` (`/v1/decide`, `/v1/authz`, `/openapi.json`, `/metrics` on the HTTPS port): with
  `--api-token-file FILE` and/or `--api-client-ca FILE`, a bearer token listed in the file or a client
  certificate issued by a CA in the file (a gateway's, a mesh's, Prometheus's).
- `admin` (`/v1/admin/...`, and pages built on it): the admin token (`--admin-token-file`) or a client
  certificate issued by a CA in `--admin-client-ca`. With neither, the admin API is off (404).

A `webhook` or `api` audience with nothing configured is open, as before these flags existed.

The TLS layer asks every client for a certificate (optional) and verifies any it gets against all the
configured CAs together; here each audience accepts only certificates issued directly by one of its
own CAs (a signature check, cached per certificate). The certificate reaches the app through the ASGI
TLS extension that `policyengine.api.protocol` fills in.

`refusal(request, audience)` returns the 401/403 answer or None; `requires(audience)` is the same as a
FastAPI dependency (raising `AccessRefused`, answered by the app's handler) for new endpoints.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID
from fastapi import Request
from fastapi.responses import JSONResponse

WEBHOOK = "webhook"
API = "api"
ADMIN = "admin"
STATE_ATTRIBUTE = "access"


class AccessRefused(Exception):
    """A request without the credentials its endpoint requires (raised by `requires`)."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def load_ca_file(path: Path) -> tuple[x509.Certificate, ...]:
    """The CA certificates of a PEM file; raises ValueError saying what is wrong with it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    try:
        cas = tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        cas = ()
    if not cas:
        raise ValueError(f"{path}: no PEM certificate in it (expected the CA that issues client certificates)")
    return cas


def load_token_file(path: Path) -> tuple[str, ...]:
    """The bearer tokens of a file, one a line (blank lines and `#` comments skipped); ValueError if none."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    tokens = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not tokens:
        raise ValueError(f"{path} holds no token: put one long random token a line in it")
    return tokens


@dataclass(frozen=True)
class Audience:
    """The credentials one group of endpoints accepts. Nothing configured: open (or off, see `closed`)."""

    name: str
    tokens: tuple[str, ...] = ()
    cas: tuple[x509.Certificate, ...] = ()
    common_name: str | None = None
    closed_when_unconfigured: bool = False  # the admin API is off without credentials
    how: str = ""  # what to pass, for the remedy of a refusal

    @property
    def configured(self) -> bool:
        return bool(self.tokens or self.cas)

    def refusal(self, request: Request) -> JSONResponse | None:
        """None when the request may pass; otherwise the 401 / 403 / 404 answer saying what to send."""
        if not self.configured:
            if self.closed_when_unconfigured:
                return _answer(404, f"the {self.name} API is off", f"start the server with {self.how} to enable it")
            return None
        if self.tokens and _bearer_ok(request, self.tokens):
            return None
        certificate = peer_certificate(request.scope)
        if self.cas and certificate is not None:
            problem = self.certificate_problem(certificate)
            if problem is None:
                return None
            return _answer(403, f"the client certificate is not accepted here: {problem}", f"present {self.how}")
        wanted = [] if not self.cas else ["a client certificate"]
        wanted += [] if not self.tokens else ["a bearer token (`Authorization: Bearer <token>`)"]
        headers = {"WWW-Authenticate": f'Bearer realm="policyengine-{self.name}"'} if self.tokens else {}
        what = f"missing or wrong credentials: this endpoint needs {' or '.join(wanted)}"
        return _answer(401, what, f"present {self.how}", headers)

    def certificate_problem(self, certificate: x509.Certificate) -> str | None:
        if not any(_issued_by(certificate, ca) for ca in self.cas):
            return f"issued by {certificate.issuer.rfc4514_string()!r}, not by a CA this endpoint trusts"
        if self.common_name is not None:
            names = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            if self.common_name not in names:
                return f"its common name is {', '.join(names) or 'empty'}, not {self.common_name!r}"
        return None


@dataclass(frozen=True)
class Access:
    """The three audiences of one server."""

    webhook: Audience
    api: Audience
    admin: Audience

    def audience(self, name: str) -> Audience:
        found: Audience = getattr(self, name)
        return found

    @classmethod
    def from_settings(cls, settings: Any) -> Access:
        """Built from `Settings` (CA files are read now: a bad one raises ValueError naming it)."""

        def cas(path: Path | None) -> tuple[x509.Certificate, ...]:
            return load_ca_file(path) if path is not None else ()

        admin_tokens = (settings.admin_token,) if settings.admin_token else ()
        return cls(
            webhook=Audience(
                WEBHOOK,
                cas=cas(settings.client_ca),
                common_name=settings.client_cn,
                how="the API server's client certificate (--client-ca"
                + (f", common name {settings.client_cn}" if settings.client_cn else "")
                + ")",
            ),
            api=Audience(
                API,
                tokens=tuple(settings.api_tokens),
                cas=cas(settings.api_client_ca),
                how="a token of --api-token-file as `Authorization: Bearer <token>`, or a client certificate "
                "issued by the CA of --api-client-ca",
            ),
            admin=Audience(
                ADMIN,
                tokens=admin_tokens,
                cas=cas(settings.admin_client_ca),
                closed_when_unconfigured=True,
                how="`Authorization: Bearer <token>` with the token of --admin-token-file, or a client "
                "certificate issued by the CA of --admin-client-ca",
            ),
        )

    @property
    def client_cas(self) -> tuple[x509.Certificate, ...]:
        """Every CA any audience trusts: what the TLS layer verifies client certificates against."""
        return (*self.webhook.cas, *self.api.cas, *self.admin.cas)


def access_of(request: Request) -> Access:
    """The server's `Access` (built by `create_app`; open audiences when the app has none)."""
    found: Access | None = getattr(request.app.state, STATE_ATTRIBUTE, None)
    if found is None:
        found = Access(Audience(WEBHOOK), Audience(API), Audience(ADMIN, closed_when_unconfigured=True))
    return found


def refusal(request: Request, audience: str) -> JSONResponse | None:
    """The answer refusing `request` for `audience`, or None when it may pass."""
    return access_of(request).audience(audience).refusal(request)


def requires(audience: str) -> Callable[[Request], None]:
    """A FastAPI dependency: `Depends(requires(ADMIN))` lets only `audience`'s callers through."""

    def dependency(request: Request) -> None:
        refused = refusal(request, audience)
        if refused is not None:
            raise AccessRefused(refused)

    return dependency


def peer_certificate(scope: Any) -> x509.Certificate | None:
    """The client certificate of the request's TLS connection (ASGI TLS extension), if it sent one."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain: Sequence[str] = tls.get("client_cert_chain") or ()
    return _parse_pem(chain[0]) if chain else None


@functools.lru_cache(maxsize=256)
def _parse_pem(pem: str) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def _issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _bearer_ok(request: Request, tokens: Sequence[str]) -> bool:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    given = presented.strip().encode()
    return any([hmac.compare_digest(given, token.encode()) for token in tokens])  # no early exit


def _answer(status: int, what: str, remedy: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": what, "remedy": remedy}, status_code=status, headers=headers)
