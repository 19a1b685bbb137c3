"""The server's state: the current policy snapshot (swapped atomically on reload), audit writer, settings.

The policy comes from the policy repo directory (reloaded when its files change) or, with a bundle URL,
from a bundle service (polled; a bundle is served only when its contents have the manifest's revision).

A `Snapshot` is built completely (policy loaded and checked, a fresh engine loaded with its modules, the
Decider warmed) before one attribute assignment makes it current, so a request sees either the old
policy or the new one, never a half-loaded mix. A failed reload keeps the current snapshot and says why.
Reachable from a request as `request.app.state.pe`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from policyengine.api import metrics
from policyengine.api.bundle_source import BundleSource, BundleUnavailable, bundle_source
from policyengine.api.live import LiveCluster, observations_of
from policyengine.api.settings import Settings
from policyengine.audit import AuditStatus, AuditWriter
from policyengine.audit import metrics as audit_metrics
from policyengine.audit.head_signer import HeadSigner
from policyengine.audit.sealer import Sealer
from policyengine.audit.signing import SigningKey
from policyengine.bundle import BundleError
from policyengine.decide import Decider
from policyengine.engine import Engine, EngineError, make_engine
from policyengine.observed import Observations
from policyengine.policy import LoadedPolicy, PolicyError, load_policy
from policyengine.route import Route

log = logging.getLogger("policyengine.server")
T = TypeVar("T")
RELOAD_REQUEST_FILE = "reload-request"
MAX_LOAD_ATTEMPTS = 3


class UnknownCluster(ValueError):
    """The served cluster is not in the policy repo: nothing it admits could be decided."""


class PolicyNotLoaded(Exception):
    """No policy is loaded yet (startup, or the first load failed): the server is not ready."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One loaded policy with the engine and Decider built for it. Never changes once built."""

    policy: LoadedPolicy
    decider: Decider
    engine: Engine
    revision: str
    loaded_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a reload did: `changed` when a new revision is now served; `problems` when it failed."""

    revision: str | None
    previous: str | None
    changed: bool
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class AppState:
    """Settings, the current `snapshot`, the `audit` writer (and its head `signer`), the evaluation pool."""

    settings: Settings
    audit: AuditWriter | None = None
    signer: HeadSigner | None = None
    last_reload_error: str | None = None
    _snapshot: Snapshot | None = None
    _listeners: list[Callable[[Snapshot], None]] = field(default_factory=list)
    _reload_lock: threading.Lock = field(default_factory=threading.Lock)
    _executor: ThreadPoolExecutor | None = None
    _policy_seen: tuple[Any, ...] = ()
    _audit_state_seen: str = "ok"
    bundles: BundleSource | None = None  # set by start() with --policy-bundle-url
    live: LiveCluster | None = None  # set by start() with --kubeconfig/--context or --in-cluster
    _bundle_polled: float = 0.0

    # -- the snapshot -------------------------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot:
        """The policy served now; raises PolicyNotLoaded before the first successful load."""
        current = self._snapshot
        if current is None:
            raise PolicyNotLoaded(self.last_reload_error or "the policy repo is not loaded yet")
        return current

    @property
    def loaded(self) -> bool:
        return self._snapshot is not None

    def observations(self) -> Observations:
        """What the live cluster shows now (nothing observed when no cluster is watched)."""
        return observations_of(self.live)

    def _served_policy(self) -> LoadedPolicy | None:
        snapshot = self._snapshot
        return snapshot.policy if snapshot is not None else None

    def add_reload_listener(self, fn: Callable[[Snapshot], None]) -> None:
        """Call `fn(snapshot)` after every successful swap; at once too when a policy is already loaded."""
        self._listeners.append(fn)
        if self._snapshot is not None:
            self._notify(fn, self._snapshot)

    def _notify(self, fn: Callable[[Snapshot], None], snapshot: Snapshot) -> None:
        try:
            fn(snapshot)
        except Exception:
            log.exception("reload listener %r failed", fn)

    def build_snapshot(self, directory: Path | None = None, expected_revision: str | None = None) -> Snapshot:
        """Load the policy repo (`directory`, default the configured one) and a fresh engine.

        With `expected_revision` (a bundle's manifest) the loaded revision must equal it. Raises
        PolicyError, EngineError, UnknownCluster or BundleError.
        """
        directory = directory or self.settings.policies
        policy = load_policy(directory)
        if expected_revision is not None and policy.revision != expected_revision:
            raise BundleError(
                f"the bundle's .manifest says revision {expected_revision}, but its contents are revision "
                f"{policy.revision} under this policyengine's rule library: it was built by another "
                "policyengine version or altered after the build (rebuild it with policyengine bundle build)"
            )
        if policy.cluster_info(self.settings.cluster) is None:
            raise UnknownCluster(
                f"cluster {self.settings.cluster!r} is not in {directory}/clusters.yaml "
                f"(known: {', '.join(policy.cluster_names())}): fix --cluster or add the cluster"
            )
        engine = make_engine(
            self.settings.engine, opa_url=self.settings.opa_url, opa_token=self.settings.opa_token
        )
        decider = Decider(policy, engine)
        return Snapshot(policy, decider, engine, policy.revision, dt.datetime.now(dt.UTC))

    def reload(self) -> ReloadOutcome:
        """Load the policy again (the repo's files, or a new bundle from the bundle URL) and swap it in
        when its revision is new; keep the current one if anything fails, and say why."""
        with self._reload_lock:
            if self.bundles is not None:
                return self._reload_bundle(self.bundles)
            # Files that change while they are read (an editor, a kubelet ..data swap between two reads)
            # may give a mix of two versions: such a load is neither served nor reported; read again.
            for attempt in range(1, MAX_LOAD_ATTEMPTS + 1):
                self._policy_seen = policy_fingerprint(self.settings.policies)
                stable = self._policy_seen if attempt < MAX_LOAD_ATTEMPTS else None
                outcome = self._load(self.settings.policies, unchanged_since=stable)
                if outcome is not None:
                    return outcome
            raise AssertionError("unreachable: the last attempt always returns")

    def _reload_bundle(self, bundles: BundleSource) -> ReloadOutcome:
        current = self._snapshot.revision if self._snapshot else None
        self._bundle_polled = time.monotonic()
        try:
            unpacked = bundles.fetch()
        except (BundleUnavailable, BundleError) as exc:
            unavailable = isinstance(exc, BundleUnavailable)
            return self._failed(current, [f"policy bundle {bundles.url}: {exc}"], quiet=unavailable)
        if unpacked is None:
            return ReloadOutcome(current, current, False)
        outcome = self._load(unpacked.directory, unpacked.revision)
        assert outcome is not None  # without unchanged_since a load always has an outcome
        served = self._snapshot.policy.directory if self._snapshot else None
        bundles.discard_except(served)
        return outcome

    def _load(
        self,
        directory: Path,
        expected_revision: str | None = None,
        unchanged_since: tuple[Any, ...] | None = None,
    ) -> ReloadOutcome | None:
        """Build and swap in; None (nothing served or reported) when the files changed from
        `unchanged_since` while they were read."""
        previous = self._snapshot.revision if self._snapshot else None
        try:
            snapshot = self.build_snapshot(directory, expected_revision)
        except (PolicyError, EngineError, UnknownCluster, BundleError, OSError) as exc:
            if unchanged_since is not None and policy_fingerprint(directory) != unchanged_since:
                return None
            return self._failed(previous, describe_load_error(exc))
        if unchanged_since is not None and policy_fingerprint(directory) != unchanged_since:
            return None
        self.last_reload_error = None
        if snapshot.revision == previous:
            metrics.POLICY_RELOADS.labels("unchanged").inc()
            return ReloadOutcome(previous, previous, False)
        self._warm(snapshot)
        self._snapshot = snapshot  # the atomic swap
        metrics.POLICY_RELOADS.labels("ok").inc()
        if previous is None:
            log.info("serving policy %s", snapshot.revision)
        else:
            log.info("policy reloaded: serving %s (was %s)", snapshot.revision, previous)
        for fn in list(self._listeners):
            self._notify(fn, snapshot)
        return ReloadOutcome(snapshot.revision, previous, True)

    def _failed(self, current: str | None, problems: list[str], *, quiet: bool = False) -> ReloadOutcome:
        """Record and log a failed reload (`quiet`: log only when the reason changed, e.g. an outage)."""
        error = "; ".join(problems)
        repeated = error == self.last_reload_error
        self.last_reload_error = error
        metrics.POLICY_RELOADS.labels("failed").inc()
        if not (quiet and repeated):
            log.error("policy reload failed, still serving %s: %s", current, error)
        return ReloadOutcome(current, current, False, tuple(problems))

    def _warm(self, snapshot: Snapshot) -> None:
        """Compile the engine in the evaluation thread before the snapshot serves its first request."""
        names = snapshot.policy.cluster_names()
        if not names:
            return

        def decide_once() -> None:
            source = snapshot.decider.endpoint(self.settings.cluster)
            destination = snapshot.decider.endpoint(names[-1])
            snapshot.decider.decide(Route("policyengine/warm-up", source, destination, via="warm-up"))

        if self.settings.eval_threads == 0:
            return  # the event loop's engine compiles on its first request
        try:
            self.executor.submit(decide_once).result(timeout=30)
        except Exception:
            log.warning("engine warm-up failed; the first request will compile it", exc_info=True)

    # -- evaluation off the event loop ----------------------------------------------------------------
    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.settings.eval_threads, thread_name_prefix="rego")
        return self._executor

    async def run_evaluation(self, fn: Callable[[], T]) -> T:
        """Run `fn` on an evaluation thread (engines are per thread); cancellation leaves it finishing.

        With `eval_threads=0` it runs inline on the event loop: no thread hand-off (the deadline then
        covers the audit write only; an evaluation is well under a millisecond with regorus).
        """
        if self.settings.eval_threads == 0:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the audit store and load the policy (a failed load leaves the server not ready)."""
        spool = self.settings.audit_spool_dir
        chain_id = f"{self.settings.cluster}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # A new chain: the writer starts (and spools) while the database is down.
        self.audit = AuditWriter.open(
            self.settings.audit_url,
            chain_id=chain_id,
            spool_dir=spool,
            new_chain=True,
            timeout_s=self.settings.audit_timeout_seconds,
        )
        if self.settings.audit_signing_key is not None:
            self.signer = self._head_signer(self.audit, self.settings.audit_signing_key)
        if self.settings.policy_bundle_url is not None:
            runtime = self.settings.runtime_dir or Path(tempfile.mkdtemp(prefix="policyengine-"))
            self.bundles = bundle_source(self.settings, runtime / "bundles" / str(os.getpid()))
        self.reload()
        self._reload_request_seen = self._reload_request()
        if self.settings.watches_cluster:
            self.live = LiveCluster.start(self.settings, self._served_policy)

    def _head_signer(self, writer: AuditWriter, key_file: Path) -> HeadSigner:
        """The signer of the writer's chain heads (the key is read here, never logged or stored)."""
        key = SigningKey.load(key_file)
        sealer = Sealer.open(self.settings.audit_url, key, check_schema=False)
        log.info("audit: signing the heads of chain %s with %s", writer.chain_id, key.key_id)
        return HeadSigner(
            writer,
            sealer,
            every_rows=self.settings.audit_sign_every_rows,
            every_seconds=self.settings.audit_sign_every_seconds,
        )

    def close(self) -> None:
        """Stop evaluating, close the writer, then sign its final head (the signer's task has ended)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self.audit is not None:
            self.audit.close()
        if self.signer is not None:
            self.signer.close()
        if self.bundles is not None:
            self.bundles.close()
        if self.live is not None:
            self.live.stop()

    # -- watching for changes -----------------------------------------------------------------------
    def _reload_request(self) -> str:
        if self.settings.runtime_dir is None:
            return ""
        try:
            return (self.settings.runtime_dir / RELOAD_REQUEST_FILE).read_text()
        except OSError:
            return ""

    def request_reload_everywhere(self) -> None:
        """Ask the other workers to reload too (they watch a file in the shared runtime dir)."""
        if self.settings.runtime_dir is None:
            return
        path = self.settings.runtime_dir / RELOAD_REQUEST_FILE
        tmp = path.with_suffix(f".{os.getpid()}")
        token = uuid.uuid4().hex
        tmp.write_text(token)
        os.replace(tmp, path)
        self._reload_request_seen = token

    def changed_since_last_load(self) -> bool:
        """True when a policy file changed (with a bundle URL: when a poll is due) or another worker
        asked for a reload."""
        request = self._reload_request()
        if request != getattr(self, "_reload_request_seen", ""):
            self._reload_request_seen = request
            return True
        if self.bundles is not None:  # until a first bundle loads, at every check
            every = self.settings.policy_bundle_poll_seconds if self._snapshot else self.settings.policy_check_seconds
            return time.monotonic() - self._bundle_polled >= every
        return policy_fingerprint(self.settings.policies) != self._policy_seen

    async def watch(self) -> None:
        """Reload on policy file changes and reload requests; refresh the live gauges."""
        while True:
            await asyncio.sleep(self.settings.policy_check_seconds)
            try:
                if self.changed_since_last_load():
                    await asyncio.to_thread(self.reload)
                self.refresh_gauges()
            except Exception:
                log.exception("policy watch failed")

    def refresh_gauges(self) -> None:
        metrics.READY.set(1 if self.readiness()[0] else 0)

    def audit_status(self) -> AuditStatus | None:
        """The audit writer's state (None before it opens); a change of state is logged once."""
        if self.audit is None:
            return None
        status = self.audit.status()
        audit_metrics.DEGRADED.set(1 if status.state == "degraded" else 0)
        if status.state != self._audit_state_seen:
            level = {"ok": logging.INFO, "degraded": logging.WARNING}.get(status.state, logging.ERROR)
            why = status.problem or status.database
            log.log(level, "audit trail %s: %s (spool %d rows)", status.state, why, status.spool_rows)
            self._audit_state_seen = status.state
        return status

    def alive(self) -> tuple[bool, str | None]:
        """Liveness: False (restart me) when decisions can be made durable nowhere."""
        status = self.audit_status()
        if status is not None and status.state == "failed":
            return False, status.problem
        return True, None

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether to take traffic, with one entry per check (policy, audit, engine)."""
        checks: dict[str, Any] = {}
        snapshot = self._snapshot
        checks["policy"] = (
            {"ok": True, "revision": snapshot.revision, "last_reload_error": self.last_reload_error}
            if snapshot
            else {"ok": False, "error": self.last_reload_error or "not loaded yet"}
        )
        # Ready while rows can be made durable: in the database, or in the spool while it has room.
        # Degraded (spooling) is said here, in a metric and in the log, not by leaving the Service.
        status = self.audit_status()
        if status is None:
            checks["audit"] = {"ok": False, "state": "not open"}
        else:
            checks["audit"] = {"ok": status.state != "failed", **status.as_dict()}
        engine_ok = True
        if snapshot is not None and hasattr(snapshot.engine, "ready"):
            try:
                engine_ok = bool(snapshot.engine.ready())
            except Exception as exc:
                engine_ok = False
                checks["engine_error"] = str(exc)
        checks["engine"] = {"ok": engine_ok and snapshot is not None, "name": self.settings.engine}
        required = [checks["policy"], checks["audit"], checks["engine"]]
        if self.live is not None:
            checks["inventory"] = self.live.check(snapshot.policy if snapshot is not None else None)
            required.append(checks["inventory"])
        return all(c["ok"] for c in required), checks


def policy_fingerprint(root: Path) -> tuple[Any, ...]:
    """Names, sizes and modification times of every file of the policy repo (cheap to compare)."""
    out: list[tuple[str, int, int]] = []
    try:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                st = path.stat()
                out.append((str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
    except OSError:
        return ()
    return tuple(out)


def describe_load_error(exc: BaseException) -> list[str]:
    """Each problem as `file:line: message`, or the error's own text."""
    problems = getattr(exc, "problems", None) or []
    lines = []
    for problem in problems:
        file = getattr(problem, "file", "")
        line = getattr(problem, "line", None)
        message = getattr(problem, "message", str(problem))
        severity = getattr(problem, "severity", "error")
        if severity == "warning":
            continue
        lines.append(f"{file}:{line}: {message}" if line else f"{file}: {message}" if file else message)
    return lines or [str(exc) or type(exc).__name__]
