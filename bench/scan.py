"""Scan and inventory benchmark: objects per second of a scan, and the memory of the inventory's cache.

The cluster is an API server double on loopback (tests/k8s/apiserver.py: no kube-apiserver runs on
these machines), over real HTTPS, read by the real `kubernetes` client.

- Scan rate: `scan_cluster` over N crossing objects (ServiceImports, HTTPRoutes and Services: list
  every kind, then decide each), against the baseline of the same objects decided in-process the way
  `check` decides manifests (`evaluate_manifest` over the objects, no listing). The ratio is the cost
  of reading a live cluster.
- Inventory memory: tracemalloc's retained bytes (of this process; the double runs in a child) once an
  `Inventory` has synced M objects
  (Namespaces with labels, Services with annotations, Nodes, ServiceImports), against the same
  objects kept whole as the lists return them. The ratio is what keeping only the needed fields saves.

    .venv/bin/python bench/scan.py [--objects 2000] [--cached 10000]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from k8s import objects  # noqa: E402
from k8s.apiserver import ApiServerDouble, kubeconfig  # noqa: E402

from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest  # noqa: E402
from policyengine.admission.extract import extractors_for  # noqa: E402
from policyengine.decide import Decider  # noqa: E402
from policyengine.engine import make_engine  # noqa: E402
from policyengine.k8s import kinds  # noqa: E402
from policyengine.k8s.client import connect  # noqa: E402
from policyengine.k8s.inventory import Inventory  # noqa: E402
from policyengine.k8s.listing import list_all, list_call  # noqa: E402
from policyengine.k8s.scan import scan_cluster  # noqa: E402
from policyengine.policy import load_policy  # noqa: E402
from policyengine.resources import default_policies  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
NAMESPACES = 20


def crossing_objects(count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [objects.namespace(f"team-{n}") for n in range(NAMESPACES)]
    for i in range(count):
        ns = f"team-{i % NAMESPACES}"
        shape = i % 3
        if shape == 0:
            out.append(objects.service_import(ns, f"svc-{i}", "eu-1", "eu-2"))
        elif shape == 1:
            out.append(objects.http_route(ns, f"route-{i}", f"svc-{i - 1}"))
        else:
            out.append(objects.service(ns, f"plain-{i}", {"residency.policyengine.io/regimes": "none"}))
    return out


def bench_scan(count: int, scratch: Path) -> None:
    double = ApiServerDouble(scratch / "scan")
    try:
        double.put_many(crossing_objects(count))
        api = connect(kubeconfig(scratch / "scan.kubeconfig", {"bench": double})).api
        decider = Decider(load_policy(default_policies()), make_engine("regorus"))
        scan_cluster(api, decider, "eu-1", now=NOW)  # warm: imports, the engine, the connection pool
        started = time.perf_counter()
        scan = scan_cluster(api, decider, "eu-1", now=NOW)
        scan_seconds = time.perf_counter() - started
        decided = len(scan.decided)
        # Baseline: the same objects, already in memory, decided as `check` decides manifests.
        listed = [o.manifest for o in scan.objects]
        by_namespace: dict[str, list[Any]] = {}
        for m in listed:
            by_namespace.setdefault(m["metadata"]["namespace"], []).append(m)
        observed = scan_observations(api, decider)
        started = time.perf_counter()
        checked = 0
        for members in by_namespace.values():
            context = EvaluationContext(manifests=members, now=NOW, observations=observed)
            for m in members:
                if extractors_for(m):
                    evaluate_manifest(m, decider, "eu-1", context)
                    checked += 1
        check_seconds = time.perf_counter() - started
        scan_rate, check_rate = decided / scan_seconds, checked / check_seconds
        print(f"scan: {decided} objects in {scan_seconds:.2f}s = {scan_rate:,.0f} objects/s (list + decide)")
        print(f"check baseline: {checked} objects in {check_seconds:.2f}s = {check_rate:,.0f} objects/s (decide only)")
        print(f"scan / check rate: {scan_rate / check_rate:.2f}")
    finally:
        double.close()


_OBSERVED: dict[int, Any] = {}


def scan_observations(api: Any, decider: Decider) -> Any:
    from policyengine.k8s.scan import observe

    key = id(api)
    if key not in _OBSERVED:
        _OBSERVED[key] = observe(api, "eu-1", decider.policy.cluster_by_fsm_key)
    return _OBSERVED[key]


def cached_objects(count: int) -> list[dict[str, Any]]:
    quarter = count // 4
    out: list[dict[str, Any]] = []
    for i in range(quarter):
        out.append(objects.namespace(f"ns-{i}", team=f"t{i % 50}", **{"data-classification": "personal"}))
        annotations = {"residency.policyengine.io/regimes": "gdpr", "service.cilium.io/global": "true",
                       "kubectl.kubernetes.io/last-applied-configuration": "x" * 400}  # fmt: skip
        out.append(objects.service(f"ns-{i % 100}", f"svc-{i}", annotations, app=f"svc-{i}"))
        out.append(objects.node(f"node-{i}", "eu-central-1"))
        out.append(objects.service_import(f"ns-{i % 100}", f"imp-{i}", "eu-1", "eu-2"))
    return out


def serve_double(count: int, directory: Path) -> None:
    """The child process of the memory benchmark: a double holding `count` objects, until stdin closes
    (the benchmark traces only its own process: the client and the inventory)."""
    double = ApiServerDouble(directory)
    double.put_many(cached_objects(count))
    kubeconfig(directory / "kubeconfig", {"bench": double})
    print("ready", flush=True)
    sys.stdin.read()
    double.close()


def bench_memory(count: int, scratch: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-double", str(count), str(scratch / "memory")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        api = connect(scratch / "memory" / "kubeconfig").api
        watched = (kinds.NAMESPACE, kinds.SERVICE, kinds.NODE, kinds.MCS_SERVICE_IMPORT)
        for kind in watched:  # imports and the connection pool, before anything is traced (one page)
            list_call(api, kind, "v1alpha1" if kind.group else "v1")(limit=1, _preload_content=False)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        inventory = Inventory(api, "eu-1", watched=watched).start()
        assert inventory.wait_synced(600), "the inventory did not sync"
        time.sleep(1.0)  # let the publisher apply the last lists
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
        cached = sum(inventory.snapshot().counts.values())
        inventory.stop()
        tracemalloc.stop()
        # Baseline: the same objects kept whole, as the lists return them.
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        whole = [list_all(api, kind, "v1alpha1" if kind.group else "v1").items for kind in watched]
        gc.collect()
        whole_bytes = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        held = sum(len(items) for items in whole)
        print(f"inventory: {cached} objects cached, {kept / 1e6:.1f} MB retained ({kept / cached:,.0f} bytes/object)")
        print(
            f"whole objects baseline: {held} objects, {whole_bytes / 1e6:.1f} MB "
            f"({whole_bytes / held:,.0f} bytes/object)"
        )
        print(f"inventory / whole objects memory: {kept / whole_bytes:.2f}")
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000, help="crossing objects the scan decides")
    parser.add_argument("--cached", type=int, default=10_000, help="objects the inventory caches")
    parser.add_argument("--serve-double", nargs=2, metavar=("COUNT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_double:
        serve_double(int(args.serve_double[0]), Path(args.serve_double[1]))
        return
    with tempfile.TemporaryDirectory(prefix="policyengine-bench-scan-") as name:
        bench_scan(args.objects, Path(name))
        bench_memory(args.cached, Path(name))


if __name__ == "__main__":
    main()
