"""Callers waiting for their rows to be durable, and waking them once their group is committed."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("policyengine.audit")


class Waiter:
    """One caller waiting for its row to be durable: a thread (an Event) or an asyncio future."""

    __slots__ = ("content", "done", "error", "future", "loop")

    def __init__(
        self,
        content: dict[str, Any],
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.content = content
        self.done = threading.Event() if future is None else None
        self.error: BaseException | None = None
        self.loop = loop
        self.future = future


def _wake_threads(batch: Sequence[Waiter], error: BaseException | None) -> list[Waiter]:
    """Hand every caller its outcome and wake the threads among them; the asyncio callers are returned."""
    asynchronous = []
    for waiter in batch:
        waiter.error = error
        if waiter.done is not None:
            waiter.done.set()
        elif waiter.future is not None:
            asynchronous.append(waiter)
    return asynchronous


def finish(batch: Sequence[Waiter], error: BaseException | None) -> None:
    """Wake every caller of a group from any thread: asyncio futures with one call per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiter in _wake_threads(batch, error):
        if waiter.loop is not None and waiter.future is not None:
            by_loop.setdefault(waiter.loop, []).append(waiter.future)
    for loop, futures in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, futures, error)
        except RuntimeError:  # the loop was closed while its callers waited: nobody is left to wake
            log.warning("audit writer: an event loop closed with %d callers waiting", len(futures))


def finish_on_loop(batch: Sequence[Waiter], error: BaseException | None) -> None:
    """`finish` from the event loop its asyncio callers wait on: their futures are settled directly."""
    _settle_all([w.future for w in _wake_threads(batch, error) if w.future is not None], error)


def _settle_all(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the caller was cancelled
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
