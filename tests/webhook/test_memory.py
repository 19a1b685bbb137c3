"""The server's garbage-collector settings (`policyengine/api/memory.py`): the heap is frozen after the
policy loads and again after every swap, without keeping replaced objects alive, and the young
generation is collected less often."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from policyengine.api.app import create_app
from policyengine.api.memory import GEN0_THRESHOLD, settle_heap
from policyengine.api.settings import Settings
from policyengine.audit.migrate import upgrade
from policyengine.resources import default_policies

POLICIES = default_policies()


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector can free it


def test_settle_heap_freezes_and_a_later_settle_frees_what_was_dropped(restored_collector: None) -> None:
    node = _Node()
    alive = weakref.ref(node)
    settle_heap()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert alive() is not None  # frozen: collections leave it alone
    settle_heap()  # what a policy swap does: unfreeze, collect, freeze again
    assert alive() is None


def test_the_server_tunes_the_collector_once_the_policy_is_loaded(
    tmp_path: Path, restored_collector: None
) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)

    async def serve(tune: bool) -> tuple[int, int]:
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
        settings = Settings(cluster="eu-1", policies=POLICIES, audit_url=url, audit_spool_dir=tmp_path, tune_gc=tune)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            return gc.get_threshold()[0], gc.get_freeze_count()

    assert asyncio.run(serve(False)) == (700, 0)
    threshold, frozen = asyncio.run(serve(True))
    assert threshold == GEN0_THRESHOLD and frozen > 0
