"""The audit signing key: Ed25519, held outside the database, that signs chain heads and reports.

The server is given a private key (a PEM file, e.g. from a Kubernetes Secret); whoever checks (an
auditor running `policyengine audit verify`, an external witness) needs only the public key. A key is
named by its `key_id` (`ed25519:` and the first 16 hex digits of the SHA-256 of the raw public key), so a
signature says which key made it. Signatures travel as base64 text.

    key = SigningKey.generate(); key.save(Path("audit.key"), Path("audit.pub"))
    signature = SigningKey.load(Path("audit.key")).sign(data)
    VerifyKey.load(Path("audit.pub")).verify(data, signature)   # True / False
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class SigningKeyError(ValueError):
    """A key file that cannot be used: says which file and what to do."""


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


class VerifyKey:
    """An Ed25519 public key: checks signatures."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public
        self.key_id = _key_id(public)

    @classmethod
    def load(cls, path: Path) -> VerifyKey:
        """A public key from a PEM file; a private key file works too (its public half is used)."""
        data = _read(path)
        if b"PRIVATE KEY" in data:
            return SigningKey.from_pem(data, path).public
        try:
            public = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise SigningKeyError(
                f"{path}: not a PEM public key ({exc}); make one with `policyengine audit keygen`"
            ) from None
        if not isinstance(public, Ed25519PublicKey):
            raise SigningKeyError(f"{path}: a {type(public).__name__}, not an Ed25519 key")
        return cls(public)

    @classmethod
    def from_pem(cls, data: bytes) -> VerifyKey:
        public = serialization.load_pem_public_key(data)
        if not isinstance(public, Ed25519PublicKey):
            raise SigningKeyError(f"a {type(public).__name__}, not an Ed25519 key")
        return cls(public)

    def pem(self) -> str:
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def verify(self, data: bytes, signature: str) -> bool:
        """True when `signature` (base64) is this key's signature of `data`."""
        try:
            self._public.verify(base64.b64decode(signature, validate=True), data)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


class SigningKey:
    """An Ed25519 private key: signs. Never stored in the audit database, never logged."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = VerifyKey(private.public_key())
        self.key_id = self.public.key_id

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id})"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """The private key in a PEM file (PKCS#8, unencrypted, as `policyengine audit keygen` writes)."""
        return cls.from_pem(_read(path), path)

    @classmethod
    def from_pem(cls, data: bytes, where: Path | str = "the key") -> SigningKey:
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(
                f"{where}: not an unencrypted PEM private key ({exc}); make one with `policyengine audit keygen`"
            ) from None
        if not isinstance(private, Ed25519PrivateKey):
            raise SigningKeyError(f"{where}: a {type(private).__name__}, not an Ed25519 key")
        return cls(private)

    def sign(self, data: bytes) -> str:
        """The base64 Ed25519 signature of `data`."""
        return base64.b64encode(self._private.sign(data)).decode()

    def save(self, private_path: Path, public_path: Path) -> None:
        """Write the private key (mode 0600) and the public key as PEM files."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        public_path.write_text(self.public.pem())


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the key ({exc.strerror})") from None
