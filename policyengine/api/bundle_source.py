"""The policy from a bundle service: `serve --policy-bundle-url URL` polls an HTTPS URL for the bundle
`policyengine bundle build` makes (an OPA bundle that also carries the policy repo).

Each poll is a GET with `If-None-Match: <ETag of the last bundle>`: 304 means unchanged, 200 brings a
new bundle, which is unpacked into a fresh directory and handed to the server, which loads it and
checks its revision against the manifest's. Any other answer, a network failure, or a bundle larger
than the limit is a `BundleUnavailable` (the server keeps serving what it has). The ETag and digest of
every bundle received are remembered, good or bad, so a bad bundle is reported once, not at every poll
(a service that sends no ETag costs a download per poll, but the same bytes are not judged again).
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import uuid
from pathlib import Path

import httpx

from policyengine.api import metrics
from policyengine.api.settings import Settings
from policyengine.bundle import BundleError, UnpackedBundle, unpack_bundle

MAX_BUNDLE_BYTES = 64 * 1024 * 1024
TIMEOUT_SECONDS = 10.0


class BundleUnavailable(Exception):
    """The bundle service did not hand over a bundle (network, HTTP status, size); says which."""


class BundleSource:
    """One bundle URL, polled with ETags; unpacks each new bundle under `into`."""

    def __init__(
        self,
        url: str,
        into: Path,
        *,
        ca: Path | None = None,
        token: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
        max_bytes: int = MAX_BUNDLE_BYTES,
    ) -> None:
        if not url.startswith("https://"):
            raise ValueError(f"policy bundle URL {url!r}: HTTPS only (the bundle decides every request)")
        self.url = url
        self.into = into
        self.etag: str | None = None
        self._digest: str | None = None
        self.max_bytes = max_bytes
        headers = {"accept": "application/gzip, application/vnd.openpolicyagent.bundle"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        verify = ssl.create_default_context(cafile=str(ca)) if ca is not None else ssl.create_default_context()
        self._client = httpx.Client(verify=verify, timeout=timeout, headers=headers, follow_redirects=False)

    def fetch(self) -> UnpackedBundle | None:
        """The new bundle, unpacked; None when the service answers 304 (unchanged).

        Raises BundleUnavailable (no bundle came) or BundleError (the bundle came and is unusable).
        """
        headers = {"if-none-match": self.etag} if self.etag else {}
        try:
            with self._client.stream("GET", self.url, headers=headers) as answer:
                if answer.status_code == 304:
                    metrics.child(metrics.BUNDLE_FETCHES, "not_modified").inc()
                    return None
                if answer.status_code != 200:
                    raise BundleUnavailable(f"{self.url} answered HTTP {answer.status_code} (expected 200 or 304)")
                body = bytearray()
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise BundleUnavailable(f"{self.url}: the bundle is larger than {self.max_bytes} bytes")
                etag = answer.headers.get("etag")
        except httpx.HTTPError as exc:
            metrics.child(metrics.BUNDLE_FETCHES, "error").inc()
            raise BundleUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from None
        except BundleUnavailable:
            metrics.child(metrics.BUNDLE_FETCHES, "error").inc()
            raise
        self.etag = etag  # good or bad, this bundle is judged once
        digest = hashlib.sha256(body).hexdigest()
        if digest == self._digest:
            metrics.child(metrics.BUNDLE_FETCHES, "not_modified").inc()
            return None
        self._digest = digest
        metrics.child(metrics.BUNDLE_FETCHES, "modified").inc()
        target = self.into / uuid.uuid4().hex
        try:
            return unpack_bundle(bytes(body), target)
        except BundleError:
            shutil.rmtree(target, ignore_errors=True)
            raise

    def discard_except(self, keep: Path | None) -> None:
        """Remove the unpacked bundles under `into` but the one at `keep` (the policy served now)."""
        if not self.into.is_dir():
            return
        for entry in self.into.iterdir():
            if keep is None or not keep.is_relative_to(entry):
                shutil.rmtree(entry, ignore_errors=True)

    def close(self) -> None:
        self._client.close()


def bundle_source(settings: Settings, into: Path) -> BundleSource:
    """The bundle source `settings` describe (`--policy-bundle-url`, `-ca`, `-token-file`)."""
    if settings.policy_bundle_url is None:
        raise ValueError("no policy bundle URL is set")
    return BundleSource(
        settings.policy_bundle_url, into, ca=settings.policy_bundle_ca, token=settings.policy_bundle_token
    )
