"""`policyengine bundle build`: a bundle the test OPA server activates (from a file, like
`opa run --bundle`, and from a bundle service), giving the decisions of the embedded engine.

The OPA server is the test stand-in (tests/opa_server.py); evaluation is real OPA.
"""

from __future__ import annotations

import json
import tarfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opa_server import BundleError as ServerBundleError
from opa_server import OpaTestServer
from typer.testing import CliRunner

from policyengine.bundle import BundleError, build_bundle
from policyengine.cli.main import app
from policyengine.decide import Decider
from policyengine.engine import EngineError, make_engine
from policyengine.engine.opa import OpaEngine
from policyengine.policy import LoadedPolicy, load_policy
from policyengine.resources import default_policies
from policyengine.route import DataProfile, Route

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
GDPR = DataProfile(("personal",), ("EEA",), ("GDPR",))


@pytest.fixture(scope="module")
def policy() -> LoadedPolicy:
    return load_policy(default_policies())


def test_cli_builds_a_bundle_with_manifest_data_and_modules(tmp_path: Path, policy: LoadedPolicy) -> None:
    out = tmp_path / "bundle.tar.gz"
    result = CliRunner().invoke(
        app, ["bundle", "build", "--policies", str(default_policies()), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert policy.revision in result.output
    with tarfile.open(out) as tar:
        names = sorted(tar.getnames())
        manifest = json.load(tar.extractfile("/.manifest"))  # type: ignore[arg-type]
        data = json.load(tar.extractfile("/policyengine/policy/data.json"))  # type: ignore[arg-type]
    assert manifest["revision"] == policy.revision
    assert manifest["roots"] == ["policyengine", "policyengine_opa"]
    assert data == json.loads(json.dumps(policy.data))
    assert "/rego/decision.rego" in names and "/policyengine_opa/envelope.rego" in names
    assert not [n for n in names if n.endswith("_test.rego")]  # unit tests stay out of the bundle


def test_bundles_are_reproducible(tmp_path: Path, policy: LoadedPolicy) -> None:
    a = build_bundle(policy.modules, policy.data, tmp_path / "a.tar.gz")
    b = build_bundle(policy.modules, policy.data, tmp_path / "b.tar.gz")
    assert a.path.read_bytes() == b.path.read_bytes()


def test_a_module_outside_the_roots_is_refused_with_its_file(tmp_path: Path, policy: LoadedPolicy) -> None:
    modules = {**policy.modules, "rego/mine.rego": "package acme.rules\n\nx := 1\n"}
    with pytest.raises(
        BundleError, match=r"rego/mine\.rego: package acme\.rules is outside the bundle roots"
    ):
        build_bundle(modules, policy.data, tmp_path / "b.tar.gz")
    result = CliRunner().invoke(
        app, ["bundle", "build", "--policies", str(tmp_path / "missing"), "--out", "x.tar.gz"]
    )
    assert result.exit_code == 2 and "does not exist" in result.output


def routes(decider: Decider) -> list[Route]:
    pairs = [
        ("eu-1", "eu-2"),
        ("eu-1", "us-1"),
        ("eu-1", "cn-1"),
        ("us-ca-1", "partner-1"),
        ("eu-1", "nowhere"),
    ]
    return [
        Route("shop/checkout", decider.endpoint(src), decider.endpoint(dst, "shop/checkout", GDPR))
        for src, dst in pairs
    ]


def same_decisions(policy: LoadedPolicy, opa_url: str) -> None:
    embedded = Decider(policy, make_engine("regorus"))
    remote = Decider(policy, OpaEngine(opa_url, timeout=5.0, push=False))
    for route in routes(embedded):
        a, b = embedded.decide(route, now=NOW), remote.decide(route, now=NOW)
        assert (a.outcome, a.violations, a.permitted_clusters, a.policy_revision) == (
            b.outcome,
            b.violations,
            b.permitted_clusters,
            b.policy_revision,
        ), route


def test_opa_started_with_the_bundle_gives_the_same_decisions(tmp_path: Path, policy: LoadedPolicy) -> None:
    info = build_bundle(policy.modules, policy.data, tmp_path / "bundle.tar.gz")
    with OpaTestServer() as opa:
        assert opa.load_bundle(str(info.path)) == policy.revision
        same_decisions(policy, opa.url)
        # The bundle owns its roots: pushing over it is refused, as OPA does.
        with pytest.raises(EngineError, match="owned by bundle"):
            OpaEngine(opa.url).load(policy.modules, policy.data)


def test_a_bundle_of_another_revision_is_not_accepted(tmp_path: Path, policy: LoadedPolicy) -> None:
    stale = build_bundle(policy.modules, {**policy.data, "revision": "sha256:old"}, tmp_path / "old.tar.gz")
    with OpaTestServer() as opa:
        opa.load_bundle(str(stale.path))
        with pytest.raises(EngineError, match=r"serves policy revision sha256:old .*publish its bundle"):
            OpaEngine(opa.url, push=False).load(policy.modules, policy.data)


@pytest.fixture
def bundle_service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A bundle service: serves one file with an ETag and answers 304 when it has not changed."""
    path = tmp_path / "served.tar.gz"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            body = path.read_bytes()
            etag = f'"{hash(body)}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/bundles/policyengine.tar.gz", path
    server.shutdown()
    server.server_close()


def test_a_bundle_from_a_bundle_service(bundle_service: tuple[str, Path], policy: LoadedPolicy) -> None:
    url, path = bundle_service
    build_bundle(policy.modules, {**policy.data, "revision": "sha256:first"}, path)
    with OpaTestServer() as opa:
        assert opa.fetch_bundle(url) is True
        assert opa.fetch_bundle(url) is False  # 304: unchanged
        assert opa.state.bundle_revision == "sha256:first"
        build_bundle(policy.modules, policy.data, path)  # the service now has the current policy
        assert opa.fetch_bundle(url) is True
        same_decisions(policy, opa.url)


def test_a_broken_bundle_is_not_activated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    with OpaTestServer() as opa, pytest.raises(ServerBundleError):
        opa.load_bundle(str(bad))
