"""Callers waiting for their rows to be durable, and waking them once their group is committed.

A caller is a thread (it waits on an Event) or an asyncio task (it awaits a future of its own loop).
`finish` is called by whichever committer owns the chain, on its own loop: futures of that loop are
settled at once, futures of other loops through one `call_soon_threadsafe` per loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("policyengine.audit")


class Waiter:
    """One caller waiting for its row to be durable; `content` becomes the row once chained."""

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


def finish(batch: Sequence[Waiter], error: BaseException | None) -> None:
    """Hand every caller of a group its outcome (None: durable) and wake it."""
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    elsewhere: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    local: list[asyncio.Future[None]] = []
    for waiter in batch:
        waiter.error = error
        if waiter.done is not None:
            waiter.done.set()
        elif waiter.future is not None and waiter.loop is not None:
            if waiter.loop is here:
                local.append(waiter.future)
            else:
                elsewhere.setdefault(waiter.loop, []).append(waiter.future)
    _settle_all(local, error)
    for loop, futures in elsewhere.items():
        try:
            loop.call_soon_threadsafe(_settle_all, futures, error)
        except RuntimeError:  # the loop was closed while its callers waited: nobody is left to wake
            log.warning("audit writer: an event loop closed with %d callers waiting", len(futures))


def _settle_all(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the caller was cancelled
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
