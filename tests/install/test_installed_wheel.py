"""What a user installs works: the wheel, built from the files the Dockerfile copies and installed by
the script the Dockerfile runs into a fresh virtualenv outside the checkout, runs `policyengine test`,
`check` on the example, `db upgrade` on SQLite and PostgreSQL, and `serve` answering an AdmissionReview
and a `/v1/authz` check over HTTPS, from a directory that is not the checkout, as the image's user with
the virtualenv read-only. A rule library that lost a module does not load, and says which.

The virtualenv is built once per module (the tests share an xdist group, so one worker builds it).
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from policyengine.api.tls import make_dev_certificates
from policyengine.resources import LIBRARY_MODULES

from .installed import REPO, Installed, fresh_root, install, remove

pytestmark = pytest.mark.xdist_group("installed-wheel")

EXAMPLES = REPO / "examples"
CATALOG_FROM_CHECKOUT = {
    "host": "catalog.shop.svc.clusterset.local",
    "x-policyengine-source": "spiffe://acme.example/ns/shop/sa/checkout",
}


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    root = fresh_root()
    try:
        yield install(root)
    finally:
        remove(root)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_installed_package_is_the_wheel_and_carries_its_data(installed: Installed) -> None:
    assert REPO not in installed.site.parents
    assert "site-packages" in installed.site.parts
    assert sorted(p.name for p in (installed.site / "rules").glob("*.rego")) == sorted(LIBRARY_MODULES)
    assert (installed.site / "policies" / "clusters.yaml").is_file()
    assert (installed.site / "migrations" / "versions").is_dir()
    assert not list(installed.venv.rglob("*.egg-link")) and not list(installed.venv.rglob("__editable__*"))


def test_policyengine_test_passes_from_the_install(installed: Installed) -> None:
    done = installed.run("test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL: 0" in done.stdout


def test_check_on_the_example_decides_as_the_checkout_does(installed: Installed) -> None:
    shutil.copytree(EXAMPLES, installed.work / "examples")
    installed.give(installed.work / "examples")
    done = installed.run("check", "examples/", "--cluster", "eu-1", "-o", "json")
    assert done.returncode == 1, done.stdout + done.stderr  # the example holds routes enforced as deny
    here = subprocess.run(
        [sys.executable, "-m", "policyengine.cli.main", "check", str(EXAMPLES), "--cluster", "eu-1", "-o", "json"],
        capture_output=True,
        text=True,
    )
    assert here.returncode == 1, here.stderr

    def outcomes(output: str) -> list[tuple[str, str, str, str]]:
        report = json.loads(output)
        return sorted(
            (Path(r["file"]).name, r["resource"]["kind"], r["resource"]["name"], r["decision"])
            for r in report["results"]
        )

    installed_outcomes = outcomes(done.stdout)
    assert installed_outcomes == outcomes(here.stdout)
    assert {o[3] for o in installed_outcomes} >= {"allow", "deny", "rewrite"}


def test_policy_init_starts_a_repo_the_install_loads(installed: Installed) -> None:
    done = installed.run("policy", "init", "mine")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (installed.work / "mine" / "clusters.yaml").is_file()
    tested = installed.run("test", "--policies", "mine")
    assert tested.returncode == 0 and "FAIL: 0" in tested.stdout, tested.stdout + tested.stderr
    linted = installed.run("policy", "lint", "mine")
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_db_upgrade_on_sqlite(installed: Installed) -> None:
    url = f"sqlite:///{installed.work / 'audit.db'}"
    done = installed.run("db", "upgrade", "--db", url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {"audit_decision", "audit_checkpoint", "alembic_version"} <= tables(url)


def test_db_upgrade_on_postgresql(installed: Installed, pg_empty_url: str) -> None:
    done = installed.run("db", "upgrade", "--db", pg_empty_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {"audit_decision", "audit_checkpoint", "alembic_version"} <= tables(pg_empty_url)


def _serve(installed: Installed) -> tuple[subprocess.Popen[str], str, Path, Path]:
    certs = make_dev_certificates(installed.work / "tls", reuse=False)
    installed.give(installed.work / "tls")
    url = f"sqlite:///{installed.work / 'serve.db'}"
    assert installed.run("db", "upgrade", "--db", url).returncode == 0
    installed.give(installed.work / "serve.db")
    port = free_port()
    log = installed.work / "serve.log"
    command = installed.command(
        "serve", "--cluster", "eu-1", "--db", url, "--host", "127.0.0.1", "--port", str(port),
        "--tls-cert", str(certs.cert), "--tls-key", str(certs.key),
        "--spool-dir", str(installed.work / "spool"), "--log-level", "info",
    )  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=installed.work, env=installed.env(), stdout=out, stderr=subprocess.STDOUT, text=True
        )
    return process, f"https://127.0.0.1:{port}", certs.ca_cert, log


def test_serve_answers_an_admission_review_and_an_authz_check(installed: Installed) -> None:
    process, base_url, ca, log = _serve(installed)
    try:
        client = httpx.Client(base_url=base_url, verify=ssl.create_default_context(cafile=str(ca)), timeout=10)
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "not ready in 60 s:\n" + log.read_text()
            time.sleep(0.2)
        review: dict[str, Any] = json.loads((EXAMPLES / "admission" / "create-httproute-profile.json").read_text())
        answer = client.post("/validate", json=review)
        assert answer.status_code == 200, answer.text
        response = answer.json()["response"]
        assert response["uid"] == review["request"]["uid"]
        assert response["allowed"] is False and "PIPL" in response["status"]["message"]
        check = client.get("/v1/authz", headers=CATALOG_FROM_CHECKOUT)
        assert check.status_code == 200, check.text
        assert check.headers["x-policyengine-cluster"] == "eu-1"
        rows = sa.create_engine(f"sqlite:///{installed.work / 'serve.db'}")
        with rows.connect() as connection:
            sources = connection.execute(sa.text("SELECT source FROM audit_decision")).scalars().all()
        rows.dispose()
        assert sorted(sources) == ["admission", "routing"]
        client.close()
    finally:
        process.terminate()
        process.wait(30)
    text = log.read_text()
    assert "Traceback" not in text, text


def test_a_module_removed_from_the_installed_library_fails_loading_naming_it(installed: Installed) -> None:
    module = installed.site / "rules" / "pipl.rego"
    kept = module.read_bytes()
    module.chmod(0o644)
    module.unlink()
    manifest = installed.work / "services.yaml"
    shutil.copy(EXAMPLES / "shop" / "services.yaml", manifest)
    installed.give(manifest)
    try:
        for args in (("test",), ("check", "--cluster", "eu-1", str(manifest)), ("policy", "lint")):
            done = installed.run(*args)
            said = done.stdout + done.stderr
            assert done.returncode in (1, 2), (args, said)
            assert "lacks pipl.rego" in said and "10 of 11 modules" in said, (args, said)
        certs = make_dev_certificates(installed.work / "tls-lib", reuse=False)
        installed.give(installed.work / "tls-lib")
        done = installed.run(
            "serve", "--cluster", "eu-1", "--tls-cert", str(certs.cert), "--tls-key", str(certs.key),
            "--db", f"sqlite:///{installed.work / 'lib.db'}",
        )  # fmt: skip
        assert done.returncode == 2 and "lacks pipl.rego" in done.stderr, done.stdout + done.stderr
    finally:
        module.write_bytes(kept)
        module.chmod(0o444)
    assert installed.run("test").returncode == 0
