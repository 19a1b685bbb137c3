"""TLS for the server: development certificates and a server context that follows its files.

`make_dev_certificates` writes a local CA and a server certificate for localhost and the in-cluster
service names. `harden` sets the protocol floor (TLS 1.2 with AEAD suites only, or 1.3) and the CAs of
client certificates. `CertificateFollower` reloads the certificate chain into the live `SSLContext` when the
files change (cert-manager rotates them in place): `load_cert_chain` may be called again on a context,
and new handshakes use the new chain. A pair that does not load (half-written, key and certificate
mismatched) is tried on a scratch context first and never replaces the working one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("policyengine.tls")

SERVICE_NAMES = (
    "policyengine",
    "policyengine.policyengine-system",
    "policyengine.policyengine-system.svc",
    "policyengine.policyengine-system.svc.cluster.local",
)
DEV_HOSTS = ("localhost", "127.0.0.1", "::1", *SERVICE_NAMES)


@dataclass(frozen=True, slots=True)
class DevCertificates:
    """Paths of a development CA and the server certificate it signed."""

    ca_cert: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _still_good(certs: DevCertificates, hosts: Sequence[str]) -> bool:
    if not (certs.ca_cert.exists() and certs.cert.exists() and certs.key.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(certs.cert.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    wanted = set(_san(hosts))
    fresh = cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
    return fresh and wanted <= set(names)


def make_dev_certificates(
    directory: Path,
    hosts: Sequence[str] = DEV_HOSTS,
    *,
    days: int = 90,
    reuse: bool = True,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> DevCertificates:
    """Write `ca.crt`, `tls.crt` and `tls.key` under `directory` (kept when still valid and `reuse`).

    Pass `ca` to sign with an existing CA (tests use it to rotate the server certificate).
    """
    directory.mkdir(parents=True, exist_ok=True)
    certs = DevCertificates(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    if reuse and ca is None and _still_good(certs, hosts):
        return certs
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    if ca is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("policyengine development CA"))
            .issuer_name(_name("policyengine development CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=days + 1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
    else:
        ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_public(certs.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    if ca is None:
        _write_private(
            directory / "ca.key",
            ca_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
    _write_private(
        certs.key,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    _write_public(certs.cert, cert.public_bytes(serialization.Encoding.PEM))
    return certs


def load_dev_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA written by `make_dev_certificates` (to sign a rotated server certificate)."""
    cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{directory / 'ca.key'} is not an EC private key")
    return cert, key


def check_pair(cert: Path, key: Path) -> str | None:
    """None when the certificate and key load together; otherwise what is wrong and what to do."""
    for path in (cert, key):
        if not path.is_file():
            return f"{path}: no such file (pass --tls-cert/--tls-key, or --dev-certs for local use)"
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        scratch.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        return f"{cert} and {key} do not load as a certificate and its key: {exc}"
    return None


class CertificateFollower:
    """Reload a live server `SSLContext` when its certificate or key file changes."""

    def __init__(self, context: ssl.SSLContext, cert: Path, key: Path, interval: float = 5.0) -> None:
        self.context = context
        self.cert = cert
        self.key = key
        self.interval = interval
        self.reloads = 0
        self._seen = self._fingerprint()
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()

    def _fingerprint(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in (self.cert, self.key):
            try:
                st = path.stat()  # follows symlinks: cert-manager swaps a ..data link
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append((0, 0, 0))
        return tuple(out)

    def check(self) -> bool:
        """Reload now if the files changed and load; True when the live chain was replaced."""
        seen = self._fingerprint()
        if seen == self._seen:
            return False
        problem = check_pair(self.cert, self.key)
        if problem:
            log.warning("keeping the current TLS certificate: %s", problem)
            return False
        self.context.load_cert_chain(self.cert, self.key)
        self._seen = seen
        self.reloads += 1
        log.info("reloaded TLS certificate from %s", self.cert)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:  # never let a bad file stop the watch
                log.exception("TLS certificate check failed")

    def start(self) -> None:
        """Check on a timer: on the running event loop (handshakes run there too), else on a thread."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            threading.Thread(target=self._thread, name="tls-follower", daemon=True).start()
            return
        self._task = loop.create_task(self._run())

    def _thread(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:
                log.exception("TLS certificate check failed")


# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are all AEAD and not affected).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def harden(context: ssl.SSLContext, min_version: str = "1.2", client_cas: Sequence[Path] = ()) -> None:
    """TLS 1.2 (AEAD suites only) or 1.3 at least; with `client_cas`, ask clients for a certificate and
    verify any they send against these CAs (optional at this layer: each endpoint decides whether it
    needs one, see policyengine/api/access.py)."""
    context.minimum_version = TLS_VERSIONS[min_version]
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_RENEGOTIATION
    if client_cas:
        for ca in client_cas:
            context.load_verify_locations(cafile=str(ca))
        context.verify_mode = ssl.CERT_OPTIONAL


def following_context(
    config: Any,
    default: Callable[[], ssl.SSLContext],
    *,
    interval: float = 5.0,
    min_version: str = "1.2",
    client_cas: Sequence[Path] = (),
) -> ssl.SSLContext:
    """A uvicorn `ssl_context_factory`: uvicorn's context, hardened, followed for certificate rotation."""
    context = default()
    harden(context, min_version, client_cas)
    CertificateFollower(context, Path(config.ssl_certfile), Path(config.ssl_keyfile), interval).start()
    return context


def context_factory(
    interval: float, min_version: str = "1.2", client_cas: Sequence[Path] = ()
) -> Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """A picklable factory (workers are spawned) for uvicorn's `ssl_context_factory`."""
    return partial(following_context, interval=interval, min_version=min_version, client_cas=tuple(client_cas))
