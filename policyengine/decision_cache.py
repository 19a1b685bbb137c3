"""Rule answers remembered per policy load, so a route decided again is not evaluated again.

The rules are a pure function of the policy (fixed for a Decider) and the input. The bundled rules read
the time only as a date (`substring(input.time, 0, 10)` in rego/lib.rego), so an answer holds for the
whole day; `reads_only_the_date` checks that statically for every module that decides, and when some
module reads more of the input's time the cache keys on the full timestamp instead (still exact).
Each answer served from the cache still becomes a new Decision with its own decision_id and audit row.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Generic, TypeVar

V = TypeVar("V")

_COMMENT = re.compile(r"#[^\n]*")
_INPUT_REF = re.compile(r"\binput\b(\.[A-Za-z_][A-Za-z0-9_]*)?")
_DATE_OF_TIME = "substring(input.time, 0, 10)"
_READS_NOT_TIME = (".route", ".opt_out")


def reads_only_the_date(modules: Mapping[str, str]) -> bool:
    """True when no module reads the input's time except as `substring(input.time, 0, 10)`."""
    for source in modules.values():
        text = _COMMENT.sub("", source)
        for match in _INPUT_REF.finditer(text):
            field = match.group(1)
            if field in _READS_NOT_TIME:
                continue
            if field == ".time" and text.startswith(_DATE_OF_TIME, match.start() - len("substring(")):
                continue
            return False
    return True


class DecisionCache(Generic[V]):
    """A bounded least-recently-used map from a route's input key to what the rules answered."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, ...], V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, ...]) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[str, ...], value: V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
