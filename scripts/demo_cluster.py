"""The README's live-cluster examples, run for real: two API server doubles (eu-1 and us-1, the test double
of tests/k8s/apiserver.py: no kube-apiserver runs on these machines) behind one kubeconfig, and the
`policyengine` command run against them.

    python scripts/demo_cluster.py scan --context eu-1 --context us-1
    python scripts/demo_cluster.py inventory --context eu-1 --context us-1
    python scripts/demo_cluster.py simulate --context eu-1 --context us-1 --candidate-policies {labelled}
    python scripts/demo_cluster.py reports          # scan --write-reports, then the eu-1 report written
    python scripts/demo_cluster.py readyz           # serve --kubeconfig: /readyz's inventory entry

`--kubeconfig` is added; `--policies` is the bundled repo plus an EU-only shop/checkout-eu (`{labelled}`
is the same with a classification by namespace label). The objects are the tests' (tests/k8s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from k8s import objects  # noqa: E402
from k8s.apiserver import ApiServerDouble, kubeconfig  # noqa: E402
from k8s.repo import EU_SERVICE, policies  # noqa: E402

from policyengine.resources import default_policies  # noqa: E402


def fleet(scratch: Path) -> tuple[ApiServerDouble, ApiServerDouble]:
    eu, us = ApiServerDouble(scratch / "eu-1"), ApiServerDouble(scratch / "us-1")
    eu.put_many([
        objects.namespace("team", **{"data-classification": "personal"}),
        objects.node("eu-1-a", "eu-central-1"),
        objects.service_export("team", "api"),
        objects.namespace("shop"),
        objects.service_import("shop", "checkout-eu", "eu-1", "eu-2", "us-1"),
        objects.http_route("shop", "to-checkout-eu", "checkout-eu"),
    ])  # fmt: skip
    us.put_many([
        objects.namespace("shop"),
        objects.node("us-1-a", "eu-west-1"),
        objects.service("shop", "catalog", {"service.cilium.io/global": "true"}),
    ])  # fmt: skip
    return eu, us


def plain_policies(scratch: Path) -> Path:
    repo = scratch / "plain-policies"
    shutil.copytree(default_policies(), repo)
    services = repo / "services.yaml"
    services.write_text(services.read_text().replace("services:\n", EU_SERVICE, 1))
    return repo


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    with tempfile.TemporaryDirectory(prefix="policyengine-demo-") as name:
        scratch = Path(name)
        eu, us = fleet(scratch)
        config = kubeconfig(scratch / "kubeconfig", {"eu-1": eu, "us-1": us})
        labelled = policies(scratch / "labelled")
        plain = plain_policies(scratch)
        env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
        command, *rest = argv
        try:
            if command == "readyz":
                return readyz(scratch, config, labelled)
            if command == "reports":
                args = ["scan", "--context", "eu-1", "--context", "us-1", "--write-reports", "--policies", str(labelled)]
            else:
                args = [command, *(a.replace("{labelled}", str(labelled)) for a in rest)]
                if command in ("scan", "inventory", "simulate") and "--policies" not in args:
                    args += ["--policies", str(labelled if command != "simulate" else plain)]
            args += ["--kubeconfig", str(config)]
            shown = " ".join(a.replace(str(scratch), "DEMO") for a in ["policyengine", *args])
            print(f"$ {shown}")
            done = subprocess.run([sys.executable, "-m", "policyengine.cli.main", *args], env=env, check=False,
                                  capture_output=True, text=True)  # fmt: skip
            print((done.stdout + done.stderr).replace(str(scratch), "DEMO"), end="")
            print(f"(exit {done.returncode})")
            if command == "reports":
                report = eu.get("PolicyReport", "team", "policyengine-team", "wgpolicyk8s.io")
                print(json.dumps(report, indent=2))
            return done.returncode
        finally:
            eu.close()
            us.close()


def readyz(scratch: Path, config: Path, repo: Path) -> int:
    from webhook.harness import start_server

    server = start_server(scratch / "serve", "--kubeconfig", str(config), "--context", "eu-1", policies=repo)
    try:
        body = server.client.get("/readyz").json()
        print(json.dumps(body["checks"]["inventory"], indent=2))
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
