"""The policy from a bundle service: `policyengine bundle build` -> an HTTPS bundle service (a real
HTTP server on loopback, with ETags) -> `policyengine serve --policy-bundle-url`. The server polls with
If-None-Match (304 costs nothing), serves a new bundle's revision in its decisions, and keeps the old
policy serving, saying why, when a bundle is unreadable or its contents are not the manifest's
revision."""

from __future__ import annotations

import gzip
import hashlib
import io
import ssl
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from policyengine.api.tls import make_dev_certificates
from policyengine.bundle import BundleError, unpack_bundle
from policyengine.cli.main import app
from policyengine.policy import load_policy

from .harness import copy_policies, start_server, wait_for


@dataclass
class BundleService:
    """Serves one bundle file over HTTPS with a content ETag; records each request's If-None-Match."""

    url: str
    path: Path
    ca: Path
    seen: list[tuple[str | None, int]] = field(default_factory=list)

    def publish(self, policies: Path) -> str:
        """`policyengine bundle build` of `policies` to the served file; the revision it printed."""
        result = CliRunner().invoke(app, ["bundle", "build", "--policies", str(policies), "--out", str(self.path)])
        assert result.exit_code == 0, result.output
        return load_policy(policies).revision


@pytest.fixture
def bundle_service(tmp_path: Path) -> Iterator[BundleService]:
    certs = make_dev_certificates(tmp_path / "bundle-tls", reuse=False)
    path = tmp_path / "served" / "policyengine.tar.gz"
    path.parent.mkdir()
    seen: list[tuple[str | None, int]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            if self.path != "/bundles/policyengine.tar.gz":
                self.send_response(404)
                self.end_headers()
                return
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            asked = self.headers.get("If-None-Match")
            status = 304 if asked == etag else 200
            seen.append((asked, status))
            self.send_response(status)
            self.send_header("ETag", etag)
            if status == 200:
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs.cert), str(certs.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://localhost:{server.server_address[1]}/bundles/policyengine.tar.gz"
    yield BundleService(url, path, certs.ca_cert, seen)
    server.shutdown()
    server.server_close()


def rewritten(archive: Path, edit: Callable[[str, bytes], bytes]) -> bytes:
    """The bundle with each file passed through `edit(name, content)` (the manifest left as it was)."""
    out = io.BytesIO()
    with tarfile.open(archive) as source, tarfile.open(fileobj=out, mode="w") as target:
        for member in source.getmembers():
            handle = source.extractfile(member)
            content = edit(member.name, handle.read() if handle else b"")
            member.size = len(content)
            target.addfile(member, io.BytesIO(content))
    return gzip.compress(out.getvalue())


def test_serve_polls_the_bundle_service_and_serves_each_good_bundle(
    tmp_path: Path, bundle_service: BundleService
) -> None:
    policies = copy_policies(tmp_path)
    first = bundle_service.publish(policies)
    server = start_server(
        tmp_path,
        "--policy-bundle-url", bundle_service.url, "--policy-bundle-ca", str(bundle_service.ca),
        "--policy-bundle-poll-seconds", "0.3", "--log-level", "info",
        policies=policies, policy_flag=False,
    )  # fmt: skip
    try:
        assert server.decide()["policy_revision"] == first
        # Unchanged: the server asks with the ETag it has and the service answers 304.
        assert wait_for(lambda: sum(1 for _, status in bundle_service.seen if status == 304) >= 3)
        assert all(asked for asked, status in bundle_service.seen if status == 304)

        # The policy repo's CI publishes a renewed SCC: every poller picks it up.
        transfers = policies / "transfers.yaml"
        transfers.write_text(transfers.read_text().replace("expires: 2026-09-30", "expires: 2030-09-30"))
        second = bundle_service.publish(policies)
        assert second != first
        assert wait_for(lambda: server.decide()["policy_revision"] == second)
        assert server.decide()["outcome"] == "allow"

        # Contents altered after the build (the manifest still claims `second`): refused, and why.
        tampered = rewritten(
            bundle_service.path,
            lambda name, content: content.replace(b"expires: 2030-09-30", b"expires: 2031-09-30")
            if name.endswith("transfers.yaml")
            else content,
        )
        bundle_service.path.write_bytes(tampered)
        assert wait_for(lambda: "manifest" in str(server.client.get("/readyz").json()["checks"]["policy"]))
        policy = server.client.get("/readyz").json()["checks"]["policy"]
        assert f"says revision {second}" in policy["last_reload_error"] and policy["revision"] == second
        assert server.decide()["policy_revision"] == second

        # Not a bundle at all: refused, and why; the good one still serves.
        bundle_service.path.write_bytes(b"<html>502 Bad Gateway</html>")
        assert wait_for(lambda: "not a readable bundle" in str(server.client.get("/readyz").json()["checks"]))
        assert server.decide()["policy_revision"] == second

        # A good bundle again (the first policy): served.
        bundle_service.publish(copy_policies(tmp_path / "again"))
        assert wait_for(lambda: server.decide()["policy_revision"] == first)
        assert server.client.get("/readyz").json()["checks"]["policy"]["last_reload_error"] is None
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log, log
    for revision in (first, second):
        assert sum(f"policy reloaded: serving {revision}" in line for line in log.splitlines()) == 1, log
    failures = [line for line in log.splitlines() if "policy reload failed" in line]
    assert len(failures) == 2, failures  # each bad bundle is reported once, not at every poll


def test_serve_refuses_a_plain_http_bundle_url(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--cluster", "eu-1", "--dev-certs", "--dev-certs-dir", str(tmp_path / "tls"),
              "--policy-bundle-url", "http://bundles.example/policyengine.tar.gz"],
    )  # fmt: skip
    assert result.exit_code == 2 and "HTTPS only" in result.output, result.output


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({}, "no .manifest"),
        ({".manifest": b'{"revision": "sha256:x"}'}, "names no policy repo"),
        ({".manifest": b"{", "policies/clusters.yaml": b""}, ".manifest is not JSON"),
        ({".manifest": b'{"revision": "r", "metadata": {"policy_repo": "p"}}', "../p/x.yaml": b"a"}, "outside"),
        ({".manifest": b'{"revision": "r", "metadata": {"policy_repo": "p"}}', "q/x.yaml": b"a"}, "no files"),
    ],
)
def test_unpacking_a_bad_bundle_says_what_is_wrong(tmp_path: Path, files: dict[str, bytes], says: str) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    with pytest.raises(BundleError, match=says):
        unpack_bundle(gzip.compress(out.getvalue()), tmp_path / "out")
    assert not (tmp_path / "p").exists()
