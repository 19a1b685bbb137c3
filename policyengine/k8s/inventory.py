"""The cluster inventory: list + watch of what decisions observe, published as an immutable snapshot.

One watcher thread per kind of `kinds.INVENTORY` lists it (paged), then watches from the list's
resourceVersion with bookmarks; a stream that ends or drops is watched again from the last version
seen, a `410 Gone` (the version expired) lists again, and any other error waits an exponential backoff
with jitter before retrying. A kind whose group is not served (a CRD that is not installed) is logged
once, counts as synced and empty, and is looked for again every `missing_retry_seconds`.

Watchers keep no objects: each turns an object into the few fields needed (`records`) and hands the
change to the publisher thread, the only owner of the records. The publisher applies every change
waiting, then builds a new `InventorySnapshot` (the `Observations` and counts) and replaces the
reference; readers (the event loop, the scan) only read the latest reference, never a lock.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from policyengine.k8s import kinds
from policyengine.k8s.kinds import Kind
from policyengine.k8s.listing import Discovery, WatchStream, list_all
from policyengine.k8s.records import Record, observations_of, record_of
from policyengine.observed import Observations

log = logging.getLogger("policyengine.inventory")

WATCH_SECONDS = 300
MISSING_RETRY_SECONDS = 300.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits in [d/2, d], d = min(cap, base * 2**n)."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


# -- what the publisher is told -----------------------------------------------------------------------
@dataclass(frozen=True)
class Replace:
    """A full list of `kind` (after a first list or a re-list): every record, nothing else."""

    kind: Kind
    records: dict[str, Record]


@dataclass(frozen=True)
class Upsert:
    kind: Kind
    key: str
    record: Record


@dataclass(frozen=True)
class Remove:
    kind: Kind
    key: str


@dataclass(frozen=True)
class Missing:
    """`kind` is not served (its CRD is not installed): synced, with nothing."""

    kind: Kind


Change = Replace | Upsert | Remove | Missing
_STOP = object()


@dataclass(frozen=True)
class InventorySnapshot:
    """What one cluster observes, and how complete that is (immutable: a new one replaces it)."""

    observations: Observations
    counts: Mapping[str, int] = field(default_factory=dict)
    missing: frozenset[str] = frozenset()
    synced: bool = False
    last_sync: float | None = None  # time.time() of the last change applied
    records: Mapping[str, Mapping[str, Record]] = field(default_factory=dict)


EMPTY = InventorySnapshot(Observations(synced=False))


def _key(obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return None
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if isinstance(namespace, str) and namespace else str(meta["name"])


def _version(obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("metadata")
    version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return str(version) if version else None


class Inventory:
    """List + watch of `kinds.INVENTORY` in one cluster (see the module docstring)."""

    def __init__(
        self,
        api: client.ApiClient,
        cluster: str,
        *,
        resolve_fsm_key: Callable[[str], str | None] = lambda key: None,
        backoff: Backoff = Backoff(),
        watch_seconds: int = WATCH_SECONDS,
        missing_retry_seconds: float = MISSING_RETRY_SECONDS,
        page_size: int = 500,
        watched: tuple[Kind, ...] = kinds.INVENTORY,
        on_publish: Callable[[InventorySnapshot], None] | None = None,
    ) -> None:
        self.api = api
        self.cluster = cluster
        self.resolve_fsm_key = resolve_fsm_key
        self.backoff = backoff
        self.watch_seconds = watch_seconds
        self.missing_retry_seconds = missing_retry_seconds
        self.page_size = page_size
        self.watched = watched
        self.on_publish = on_publish
        self.delays: list[float] = []  # every backoff waited, in order (read by tests and logs)
        self.lists: dict[str, int] = {k.label: 0 for k in watched}  # lists done per kind
        self._snapshot = EMPTY
        self._changes: queue.Queue[Change | object] = queue.Queue()
        self._stopping = threading.Event()
        self._streams: dict[str, WatchStream] = {}
        self._threads: list[threading.Thread] = []
        self._synced_once = threading.Event()

    # -- what readers use -------------------------------------------------------------------------
    def current(self) -> Observations:
        """The latest observations (not synced until every kind was listed once)."""
        return self._snapshot.observations

    def snapshot(self) -> InventorySnapshot:
        return self._snapshot

    def wait_synced(self, seconds: float) -> bool:
        return self._synced_once.wait(seconds)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Inventory:
        publisher = threading.Thread(target=self._publish_loop, name="inventory-publisher", daemon=True)
        self._threads.append(publisher)
        publisher.start()
        for kind in self.watched:
            thread = threading.Thread(target=self._watch_kind, args=(kind,), name=f"watch-{kind.label}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, seconds: float = 5.0) -> None:
        self._stopping.set()
        for stream in list(self._streams.values()):
            stream.stop()
        self._changes.put(_STOP)
        deadline = time.monotonic() + seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- watcher threads (one per kind): producers only -----------------------------------------------
    def _watch_kind(self, kind: Kind) -> None:
        discovery = Discovery(self.api)
        attempt = 0
        missing_logged = False
        while not self._stopping.is_set():
            try:
                discovery.refresh()
                version = discovery.version(kind)
                if version is None:
                    if not missing_logged:
                        log.info("inventory: %s is not served in %s (CRD not installed): skipped", kind.label,
                                 self.cluster)  # fmt: skip
                        missing_logged = True
                    self._changes.put(Missing(kind))
                    self._stopping.wait(self.missing_retry_seconds)
                    continue
                missing_logged = False
                resource_version = self._list(kind, version)
                attempt = 0
                stream = WatchStream(self.api, kind, version, kinds.SELECTORS.get(kind))
                self._streams[kind.label] = stream
                while not self._stopping.is_set():
                    resource_version = self._watch(kind, stream, resource_version)
            except ApiException as exc:
                if self._stopping.is_set():
                    return
                if exc.status == 410:
                    log.info("inventory: %s watch expired (410 Gone): listing again", kind.label)
                    continue
                attempt = self._wait(kind, attempt, f"HTTP {exc.status} {exc.reason}")
            except (HTTPError, OSError, ValueError) as exc:
                if self._stopping.is_set():
                    return
                attempt = self._wait(kind, attempt, f"{type(exc).__name__}: {exc}")

    def _wait(self, kind: Kind, attempt: int, why: str) -> int:
        delay = self.backoff.delay(attempt)
        self.delays.append(delay)
        log.warning("inventory: %s in %s failed (%s); retrying in %.1fs", kind.label, self.cluster, why, delay)
        self._stopping.wait(delay)
        return attempt + 1

    def _list(self, kind: Kind, version: str) -> str:
        listing = list_all(self.api, kind, version, page_size=self.page_size, label_selector=kinds.SELECTORS.get(kind))
        records: dict[str, Record] = {}
        for obj in listing.items:
            key, record = _key(obj), record_of(kind, obj, self.resolve_fsm_key)
            if key is not None and record is not None:
                records[key] = record
        self.lists[kind.label] = self.lists.get(kind.label, 0) + 1
        self._changes.put(Replace(kind, records))
        return listing.resource_version

    def _watch(self, kind: Kind, stream: WatchStream, resource_version: str) -> str:
        """Apply the events of one watch; the last resourceVersion seen (raises ApiException 410)."""
        for event in stream.events(resource_version, self.watch_seconds):
            if self._stopping.is_set():
                break
            obj = event["object"]
            resource_version = _version(obj) or resource_version
            kind_of_event = event["type"]
            if kind_of_event == "BOOKMARK":
                continue
            key = _key(obj)
            if key is None:
                continue
            record = record_of(kind, obj, self.resolve_fsm_key) if kind_of_event != "DELETED" else None
            self._changes.put(Upsert(kind, key, record) if record is not None else Remove(kind, key))
        return resource_version

    # -- the publisher thread: the one owner of the records ---------------------------------------------
    def _publish_loop(self) -> None:
        records: dict[Kind, dict[str, Record]] = {k: {} for k in self.watched}
        synced: set[Kind] = set()
        missing: set[Kind] = set()
        while True:
            change = self._changes.get()
            batch = [change]
            while True:
                try:
                    batch.append(self._changes.get_nowait())
                except queue.Empty:
                    break
            if any(c is _STOP for c in batch):
                return
            for c in batch:
                if isinstance(c, Replace):
                    records[c.kind] = dict(c.records)
                    synced.add(c.kind)
                    missing.discard(c.kind)
                elif isinstance(c, Upsert):
                    records[c.kind][c.key] = c.record
                elif isinstance(c, Remove):
                    records[c.kind].pop(c.key, None)
                elif isinstance(c, Missing):
                    records[c.kind] = {}
                    synced.add(c.kind)
                    missing.add(c.kind)
            complete = len(synced) == len(self.watched)
            snapshot = InventorySnapshot(
                observations=self._observations(records, complete),
                counts={k.label: len(v) for k, v in records.items() if k not in missing},
                missing=frozenset(k.label for k in missing),
                synced=complete,
                last_sync=time.time(),
                records={k.label: dict(v) for k, v in records.items()},
            )
            self._snapshot = snapshot  # the swap: readers see the old or the new one, whole
            if complete:
                self._synced_once.set()
            if self.on_publish is not None:
                try:
                    self.on_publish(snapshot)
                except Exception:
                    log.exception("inventory: publishing the snapshot failed")

    def _observations(self, records: Mapping[Kind, Mapping[str, Record]], synced: bool) -> Observations:
        return observations_of(self.cluster, records, synced)
