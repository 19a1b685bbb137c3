"""The embedded Rego engine: regorus (Rust), one engine per thread, compiled once per policy load.

regorus engines are unsendable (using or dropping one on another thread panics), so each thread builds
its own from the loaded modules and data the first time it evaluates after a load, then reuses it. The
thread owns them, not the `RegorusEngine`: they live in a module-level thread-local table, so dropping a
`RegorusEngine` (an old policy snapshot, released by whichever thread swapped in the new one) drops no
regorus object. A thread drops its engines itself: stale ones when it next builds, all of them when it
ends. The decision
entry point runs on regorus's compiled virtual machine (RVM), about four times faster than its tree
interpreter here; other queries (explain, unit tests, ad-hoc rules) use the interpreter. The oracle
tests check both against real OPA. All values cross the boundary as JSON text; any engine error,
panic included, becomes an EngineError.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import regorus

from policyengine.engine.base import DECISION_QUERY, EngineError, RegoTestCase, RegoTestResult, discover_tests

_BACKTRACE = "\n\nStack backtrace"
_INSTRUCTION_LIMIT = "exceeded maximum instruction limit"
_UNDEFINED = '"<undefined>"'


def clean_error(exc: BaseException) -> str:
    """The engine's message without the Rust backtrace tail."""
    text = str(exc)
    return text.split(_BACKTRACE, 1)[0].strip()


class _Loaded:
    """An immutable load: the modules and the data JSON, with a generation number."""

    __slots__ = ("data_json", "generation", "modules")

    def __init__(self, modules: Mapping[str, str], data_json: str, generation: int) -> None:
        self.modules = dict(modules)
        self.data_json = data_json
        self.generation = generation


class _ThreadEngines:
    """What one thread evaluates with: the interpreter and, for the compiled entry points, an RVM."""

    __slots__ = ("interpreter", "vm")

    def __init__(self, interpreter: regorus.Engine, vm: regorus.Rvm | None) -> None:
        self.interpreter = interpreter
        self.vm = vm


class _OwnedEngines:
    """One thread's engines for one `RegorusEngine` and load generation (kept in `_THREAD_ENGINES`)."""

    __slots__ = ("engines", "generation", "owner")

    def __init__(self, owner: weakref.ref[RegorusEngine], generation: int, engines: _ThreadEngines) -> None:
        self.owner = owner
        self.generation = generation
        self.engines = engines


# Per thread: {RegorusEngine token: its engines built on this thread}. Module-level, so it is never
# collected on another thread; CPython clears a thread's entry on that thread when it ends.
_THREAD_ENGINES = threading.local()
_TOKENS = itertools.count(1)


def _thread_table() -> dict[int, _OwnedEngines]:
    table: dict[int, _OwnedEngines] | None = getattr(_THREAD_ENGINES, "table", None)
    if table is None:
        table = _THREAD_ENGINES.table = {}
    return table


def _guarded(what: str, action: Any) -> Any:
    try:
        return action()
    except BaseException as exc:  # regorus raises RuntimeError, or PanicException (a BaseException)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise EngineError(f"{what}: {clean_error(exc)}") from None


class RegorusEngine:
    """Engine over regorus; safe to share between threads (each thread gets its own regorus engines)."""

    name = "regorus"

    def __init__(self, compiled_entry_points: tuple[str, ...] = (DECISION_QUERY,)) -> None:
        self._entry_points = compiled_entry_points
        self._loaded: _Loaded | None = None
        self._token = next(_TOKENS)
        self._lock = threading.Lock()

    def load(self, modules: Mapping[str, str], data: Mapping[str, Any]) -> None:
        data_json = json.dumps({"policyengine": {"policy": data}}, sort_keys=True)
        with self._lock:
            generation = self._loaded.generation + 1 if self._loaded else 1
            candidate = _Loaded(modules, data_json, generation)
            engines = self._build(candidate)  # validates before swapping: a bad module never goes live
            self._loaded = candidate
        self._keep(generation, engines)

    def _keep(self, generation: int, engines: _ThreadEngines) -> None:
        """Hold `engines` for this thread; drop, here, this thread's engines of collected owners."""
        table = _thread_table()
        for token in [t for t, owned in table.items() if owned.owner() is None]:
            del table[token]
        table[self._token] = _OwnedEngines(weakref.ref(self), generation, engines)

    def _build(self, loaded: _Loaded) -> _ThreadEngines:
        interpreter = self._interpreter(loaded)
        vm = None
        if self._entry_points:
            modules = sorted(loaded.modules.items())
            program = _guarded(
                "compiling the Rego modules for the decision entry point failed",
                lambda: regorus.Program.compile_from_modules(loaded.data_json, modules, list(self._entry_points)),
            )
            vm = regorus.Rvm()
            _guarded("loading the compiled program failed", lambda: vm.load_program(program))
            _guarded("loading the policy data failed", lambda: vm.set_data_json(loaded.data_json))
        return _ThreadEngines(interpreter, vm)

    def _interpreter(self, loaded: _Loaded) -> regorus.Engine:
        engine = regorus.Engine()
        for path, source in sorted(loaded.modules.items()):
            _guarded(f"Rego module {path} does not compile", lambda p=path, s=source: engine.add_policy(p, s))
        _guarded("policy data rejected by the engine", lambda: engine.add_data_json(loaded.data_json))
        return engine

    def _engines(self) -> _ThreadEngines:
        loaded = self._loaded
        if loaded is None:
            raise EngineError("no policy is loaded into the Rego engine")
        owned = _thread_table().get(self._token)
        if owned is not None and owned.generation == loaded.generation:
            return owned.engines
        engines = self._build(loaded)
        self._keep(loaded.generation, engines)
        return engines

    def evaluate(self, query: str, input_json: str) -> Any:
        engines = self._engines()
        try:
            if engines.vm is not None and query in self._entry_points:
                engines.vm.set_input_json(input_json)
                try:
                    text = engines.vm.execute_entry_point(query)
                except BaseException as exc:
                    if _INSTRUCTION_LIMIT not in str(exc):
                        raise
                    # The RVM stops at a fixed instruction budget (25,000), which a route over ~100
                    # clusters can exceed; the interpreter evaluates the same rules without one.
                    engines.interpreter.set_input_json(input_json)
                    text = engines.interpreter.eval_rule_as_json(query)
            else:
                engines.interpreter.set_input_json(input_json)
                text = engines.interpreter.eval_rule_as_json(query)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise EngineError(f"evaluating {query} failed: {clean_error(exc)}") from None
        if text == _UNDEFINED:
            raise EngineError(f"{query} is undefined for this input (a rule did not apply)")
        return json.loads(text)

    def run_tests(self) -> list[RegoTestResult]:
        loaded = self._loaded
        if loaded is None:
            raise EngineError("no policy is loaded into the Rego engine")
        engine = self._engines().interpreter
        return [self._run_one(engine, case) for case in discover_tests(loaded.modules)]

    def _run_one(self, engine: regorus.Engine, case: RegoTestCase) -> RegoTestResult:
        started = time.perf_counter()
        try:
            engine.set_input_json("{}")
            value = engine.eval_rule_as_json(case.query)
            passed = value == "true"
            error = "" if passed else ("undefined" if value == _UNDEFINED else f"result {value}")
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            passed, error = False, clean_error(exc)
        elapsed = (time.perf_counter() - started) * 1e6
        return RegoTestResult(case.file, case.package, case.name, passed, error, elapsed, case.row)
