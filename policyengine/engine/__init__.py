"""Rego evaluators behind one interface: embedded regorus (default) or an OPA server."""

from __future__ import annotations

from policyengine.engine.base import DECISION_QUERY, Engine, EngineError, RegoTestResult

ENGINE_KINDS = ("regorus", "opa")


def make_engine(
    kind: str = "regorus",
    *,
    opa_url: str | None = None,
    opa_token: str | None = None,
    timeout: float = 1.0,
) -> Engine:
    """Build the engine named by `kind`; raises EngineError for an unknown kind or missing settings."""
    if kind == "regorus":
        from policyengine.engine.regorus import RegorusEngine

        return RegorusEngine()
    if kind == "opa":
        if not opa_url:
            raise EngineError("--engine opa needs --opa-url (e.g. http://127.0.0.1:8181)")
        from policyengine.engine import opa

        return opa.OpaEngine(opa_url, token=opa_token, timeout=timeout)
    raise EngineError(f"unknown engine {kind!r}: choose one of {', '.join(ENGINE_KINDS)}")


__all__ = ["DECISION_QUERY", "ENGINE_KINDS", "Engine", "EngineError", "RegoTestResult", "make_engine"]
