"""The spool's disk fills up during a database outage, then frees up (issue #13 items 4, 5 and 8).

The full disk is real: the spool directory is a 4 MiB tmpfs mounted for the test (this needs root, as
the test machines and CI have; without it the test is skipped and says so), filled by a file of the
test's own. Writes then fail with ENOSPC, part-way through a record too (a torn write).

- While rows can be made durable nowhere, the decisions are refused, and no refusal names a decision
  id (`auditAnnotations.decision_id` on /validate, `x-policyengine-decision-id` on /v1/authz) that the
  trail does not hold; the replica is not ready and not live (`/healthz` 503), so the kubelet restarts it.
- A torn record is cut back, so once space is freed the next acknowledged row is whole and is shipped.
- When the database is back, every acknowledged row is in it and verify agrees: 0 lost.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit.own_postgres import OwnPostgres

from reliability.served import httproute_review, lost, serve, verified


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "spool"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the full-disk test here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_spool_disk_refuses_without_ids_then_loses_nothing(
    own_postgres: OwnPostgres, small_disk: Path, tmp_path: Path
) -> None:
    server = serve(tmp_path, own_postgres.url, small_disk)
    filler = small_disk / "filler"
    try:
        own_postgres.stop()
        assert server.validate(httproute_review(0)).status_code == 200  # spooled
        with filler.open("wb") as out:  # leave about 40 KiB
            free = _free(small_disk)
            out.write(b"\0" * max(0, free - 40 * 1024))
        refused_validate = refused_authz = 0
        for n in range(1, 400):
            answer = server.validate(httproute_review(n))
            assert answer.status_code == 200, answer.text
            body = answer.json()["response"]
            if "auditAnnotations" not in body:
                refused_validate += 1
                assert body["allowed"] is False and body["status"]["code"] == 503, body
                assert "decision_id" not in str(body.get("auditAnnotations", {}))
            authz = server.authz()
            assert authz.status_code in (200, 403), authz.text
            if authz.status_code == 403 and "could not record" in authz.text:
                refused_authz += 1
                assert "x-policyengine-decision-id" not in authz.headers
                assert "decision_id" not in authz.json()
            if refused_validate >= 5 and refused_authz >= 5:
                break
        assert refused_validate >= 5 and refused_authz >= 5, (refused_validate, refused_authz)
        assert server.live().status_code == 503, server.live().text
        assert server.ready().status_code == 503
        filler.unlink()
        after = server.validate(httproute_review(1000))  # room again: acknowledged
        assert "auditAnnotations" in after.json()["response"], after.text
        from policyengine.audit.spool import parse

        for spool in small_disk.glob("*.spool"):
            _rows, whole = parse(spool.read_bytes())
            assert whole == spool.stat().st_size, "a torn record was left in the spool"
        own_postgres.start()
        missing = lost(own_postgres.url, server.given)
    finally:
        server.stop()
    assert not missing, f"{len(missing)} of {len(server.given)} acknowledged decisions lost"
    assert verified(own_postgres.url) >= len(server.given)


def _free(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize
