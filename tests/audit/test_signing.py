"""The audit signing key: sign with the private key, check with the public one, refuse what is not a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from policyengine.audit.signing import SigningKey, SigningKeyError, VerifyKey


def test_a_signature_verifies_with_the_public_key_only(tmp_path: Path) -> None:
    key = SigningKey.generate()
    key.save(tmp_path / "audit.key", tmp_path / "audit.pub")
    assert (tmp_path / "audit.key").stat().st_mode & 0o777 == 0o600
    signature = SigningKey.load(tmp_path / "audit.key").sign(b"head 42")
    public = VerifyKey.load(tmp_path / "audit.pub")
    assert public.key_id == key.key_id and public.key_id.startswith("ed25519:")
    assert public.verify(b"head 42", signature)
    assert not public.verify(b"head 43", signature)
    assert not public.verify(b"head 42", "not base64!")
    assert not VerifyKey.load(tmp_path / "audit.key").verify(b"head 42", SigningKey.generate().sign(b"head 42"))


def test_files_that_are_not_ed25519_keys_are_refused_with_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(SigningKeyError, match=r"junk\.pem"):
        SigningKey.load(junk)
    with pytest.raises(SigningKeyError, match="cannot read"):
        VerifyKey.load(tmp_path / "missing.pub")
