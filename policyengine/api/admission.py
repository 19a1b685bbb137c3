"""`/mutate` and `/validate`: the admission webhook endpoints (AdmissionReview v1).

/mutate tags Services, Deployments, StatefulSets and ServiceExports with their residency regimes and,
where the enforcement is `rewrite`, rewrites routing objects to their in-region part. /validate re-checks
the final object and answers per enforcement: deny refuses (403), warn allows with warnings, dryrun
allows and only audits. Every decision is one audit row, durable before the answer. An internal deadline
below the webhook timeout answers per the configured failure mode instead of letting the API server
time out. Bad input is a 400 with a message, counted in metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from policyengine.admission import review as rv
from policyengine.admission.evaluate import EvaluationContext, evaluate_manifest
from policyengine.admission.extract import ManifestError, extractors_for
from policyengine.admission.tagging import is_tagged_kind, tag_patch
from policyengine.api import access, metrics, openapi
from policyengine.api.body import BodyProblem, body_timeout, read_body
from policyengine.api.settings import Settings
from policyengine.api.state import AppState, PolicyNotLoaded
from policyengine.audit import AuditRecord, AuditStoreError
from policyengine.audit.record import judged_route
from policyengine.decision import Decision, Enforcement, Outcome

log = logging.getLogger("policyengine.admission")
router = APIRouter()
echo_router = APIRouter()


class ReviewJSON(JSONResponse):
    """An AdmissionReview answer rendered by orjson: the same compact UTF-8 JSON, a few times faster."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass
class Answer:
    """What to answer one review, before it is encoded."""

    allowed: bool
    label: str  # the decision label of metrics: allow, deny, warn, dryrun, rewrite, tag, skip, failure
    code: int | None = None
    message: str | None = None
    reason: str | None = None
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)


# -- reading the request -------------------------------------------------------------------------------
BODY_REMEDY = "raise --max-body-bytes if your objects are this large"


async def read_review(request: Request, settings: Settings) -> rv.AdmissionReview:
    """The AdmissionReview of the request: content type, body within size, bounded JSON, shape (the caller
    bounds the time: a `TimeoutError` while reading is `body_timeout`)."""
    rv.check_content_type(request.headers.get("content-type"))
    body = await read_body(request, settings.max_body_bytes, remedy=BODY_REMEDY)
    return rv.parse_review(body, request.headers.get("content-type"), settings.max_body_bytes)


def bad_request(endpoint: str, error: rv.ReviewError | BodyProblem) -> JSONResponse:
    """The answer to a request that is not a usable review: 400 (or 408, 413), counted, logged without the
    request's own values (the log keeps the reason and the JSON path; the client gets the whole message)."""
    status = error.status if isinstance(error, BodyProblem) else 400
    headers = error.headers if isinstance(error, BodyProblem) else {}
    metrics.BAD_REQUESTS.labels(endpoint, error.reason).inc()
    log.info("%s: %d %s at %s", endpoint, status, error.reason, error.where or "(body)")
    return JSONResponse(rv.error_body(error.message), status_code=status, headers=headers)


def skip_reason(request: rv.AdmissionRequest, settings: Settings) -> str | None:
    """Why a review is allowed untouched without a decision, or None to review it."""
    if request.username == settings.own_username:
        return "request from policyengine's own service account"
    if request.namespace == settings.own_namespace:
        return "object in policyengine's own namespace"
    if request.operation in ("DELETE", "CONNECT"):
        return f"{request.operation} is always allowed"
    return None


def with_namespace(obj: dict[str, Any], request: rv.AdmissionRequest) -> dict[str, Any]:
    """The object with `metadata.namespace` filled from the request (the API server may leave it out)."""
    metadata = obj.get("metadata") or {}
    if metadata.get("namespace") or not request.namespace:
        return obj
    return {**obj, "metadata": {**metadata, "namespace": request.namespace}}


# -- decisions, audit and metrics ------------------------------------------------------------------------
def identity(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    name = metadata.get("name") or f"{metadata.get('generateName', '')}*"
    namespace = metadata.get("namespace")
    return f"{obj.get('kind')} {namespace}/{name}" if namespace else f"{obj.get('kind')} {name}"


async def audit(state: AppState, decision: Decision, request: rv.AdmissionRequest, obj: dict[str, Any]) -> None:
    """One audit row for the decision, durable before the caller answers."""
    assert state.audit is not None, "the audit store opens before the server takes requests"
    metadata = obj.get("metadata") or {}
    namespace = str(metadata.get("namespace") or request.namespace or "")
    name = str(metadata.get("name") or request.name or "")
    service, source_cluster, destination_cluster = judged_route(decision, namespace, name, state.settings.cluster)
    await state.audit.record_async(
        AuditRecord(
            source="admission",
            decision=decision,
            cluster=state.settings.cluster,
            operation=request.operation,
            api_version=str(obj.get("apiVersion", "")),
            kind=str(obj.get("kind", "")),
            namespace=namespace,
            name=name,
            service=service,
            source_cluster=source_cluster,
            destination_cluster=destination_cluster,
            dry_run=request.dry_run,
            user=request.username,
        )
    )
    for violation in decision.violations:
        metrics.child(metrics.ADMISSION_VIOLATIONS, violation.regime, decision.enforcement.value).inc()


def audit_notes(decision: Decision) -> dict[str, str]:
    return {
        "decision_id": decision.decision_id,
        "policy_revision": decision.policy_revision,
        "outcome": decision.outcome.value,
        "enforcement": decision.enforcement.value,
    }


def denial_message(decision: Decision, obj: dict[str, Any]) -> str:
    """Why the object is refused: regime, article, what crosses where, and the way out, per violation."""
    parts = []
    for v in decision.violations:
        remedy = f" Remedy: {v.remedy}" if v.remedy else ""
        parts.append(f"[{v.regime} {v.rule}] {v.article}: {v.message}.{remedy}".replace("..", "."))
    reasons = " | ".join(parts) or "the policy denies it"
    return f"policyengine refused {identity(obj)} (decision {decision.decision_id}): {reasons}"


def violation_warnings(decision: Decision) -> list[str]:
    out: list[str] = []
    for v in decision.violations:
        out.append(f"{v.regime} {v.article} ({v.enforcement}): {v.message}")
        if v.remedy:
            out.append(f"{v.regime} remedy: {v.remedy}")
    return out


def failure_answer(endpoint: str, settings: Settings, why: str) -> Answer:
    """The answer when no decision could be made in time (or at all): the configured failure mode."""
    mode = settings.mutate_failure if endpoint == "mutate" else settings.validate_failure
    if mode == "allow":
        return Answer(True, "failure", warnings=[f"policyengine: {why}; allowed by its failure mode"])
    message = (
        f"policyengine could not decide: {why}. Refused by its failure mode (validate_failure=deny); "
        "retry, and if it persists see the break-glass steps in the README"
    )
    return Answer(False, "failure", code=503, message=message, reason="ServiceUnavailable")


async def decide_mutation(state: AppState, request: rv.AdmissionRequest, obj: dict[str, Any]) -> Answer:
    """Tags for tagged kinds; the in-region rewrite of routing objects whose enforcement is rewrite."""
    snapshot = state.snapshot

    def work() -> tuple[list[dict[str, Any]], Decision | None]:
        tags = [dict(op) for op in tag_patch(obj, snapshot.policy)] if is_tagged_kind(obj) else []
        tagged = jsonpatch.apply_patch(obj, tags) if tags else obj
        decision = None
        if extractors_for(tagged):
            context = EvaluationContext(observations=state.observations())
            decision = evaluate_manifest(tagged, snapshot.decider, state.settings.cluster, context)
        return tags, decision

    tags, decision = await state.run_evaluation(work)
    answer = Answer(True, "tag" if tags else "allow", patch=list(tags))
    if decision is None:
        return answer
    await audit(state, decision, request, obj)
    answer.annotations = audit_notes(decision)
    if decision.outcome is Outcome.REWRITE and decision.patch:
        answer.patch.extend(dict(op) for op in decision.patch)
        answer.warnings.extend(decision.warnings)
        answer.label = "rewrite"
    return answer


async def decide_validation(state: AppState, request: rv.AdmissionRequest, obj: dict[str, Any]) -> Answer:
    """Decide the final object and answer per enforcement (tags are recomputed, never read)."""
    snapshot = state.snapshot
    if not extractors_for(obj):
        return Answer(True, "skip")
    context = EvaluationContext(observations=state.observations())
    decision = await state.run_evaluation(
        lambda: evaluate_manifest(obj, snapshot.decider, state.settings.cluster, context)
    )
    await audit(state, decision, request, obj)
    notes = audit_notes(decision)
    if decision.outcome is Outcome.ALLOW:
        return Answer(True, "allow", warnings=list(decision.warnings), annotations=notes)
    if decision.enforcement in (Enforcement.DENY, Enforcement.REWRITE):
        message = denial_message(decision, obj)
        if decision.outcome is Outcome.REWRITE:
            message += " (the mutating webhook rewrites this object to its permitted part when it runs first)"
        return Answer(False, "deny", code=403, message=message, reason="Forbidden", annotations=notes)
    if decision.enforcement is Enforcement.WARN:
        return Answer(True, "warn", warnings=violation_warnings(decision), annotations=notes)
    return Answer(True, "dryrun", annotations=notes)


# -- the endpoints -------------------------------------------------------------------------------------
async def answer_review(state: AppState, endpoint: str, req: rv.AdmissionRequest, obj: dict[str, Any] | None) -> Answer:
    """The answer to a well-formed review: skipped, decided, or the failure mode when no decision can be
    made (a ManifestError, the object's own fault, is the caller's 400)."""
    skip = skip_reason(req, state.settings) if obj is not None else "no object"
    if skip is not None:
        return Answer(True, "skip")
    assert obj is not None
    decide = decide_mutation if endpoint == "mutate" else decide_validation
    try:
        return await decide(state, req, with_namespace(obj, req))
    except PolicyNotLoaded as exc:
        return failure_answer(endpoint, state.settings, f"not ready ({exc})")
    except AuditStoreError as exc:
        return failure_answer(endpoint, state.settings, f"the decision could not be audited ({exc})")


async def handle(request: Request, endpoint: str) -> Response:
    state: AppState = request.app.state.pe
    settings = state.settings
    refused = access.refusal(request, access.WEBHOOK)
    if refused is not None:
        metrics.BAD_REQUESTS.labels(endpoint, "unauthenticated").inc()
        return refused
    # One deadline covers reading the body and deciding: it starts once the headers are in. Past it
    # while the body is still arriving, the answer is a 408; while deciding, the failure mode.
    deadline = settings.mutate_deadline_seconds if endpoint == "mutate" else settings.validate_deadline_seconds
    review: rv.AdmissionReview | None = None
    obj: dict[str, Any] | None = None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline):  # no extra task per request, unlike wait_for on 3.11
            review = await read_review(request, settings)
            obj = rv.check_object(review.request)
            started = time.perf_counter()
            answer = await answer_review(state, endpoint, review.request, obj)
    except (rv.ReviewError, BodyProblem) as exc:
        return bad_request(endpoint, exc)
    except ManifestError as exc:
        return bad_request(endpoint, rv.ReviewError("shape", f"request.object: {exc}", "request.object"))
    except TimeoutError:
        if review is None:
            return bad_request(endpoint, body_timeout(deadline))
        answer = failure_answer(endpoint, settings, f"no decision within the {deadline:g}s deadline")
    req = review.request
    kind = req.kind.kind
    if answer.label == "failure":
        log.warning("%s %s: %s", endpoint, identity(obj or {}), answer.message or answer.warnings)
    metrics.child(metrics.ADMISSION_REQUESTS, endpoint, kind, answer.label).inc()
    metrics.child(metrics.ADMISSION_DURATION, endpoint, kind, answer.label).observe(time.perf_counter() - started)
    body = rv.review_response(
        req.uid,
        answer.allowed,
        code=answer.code,
        message=answer.message,
        reason=answer.reason,
        patch=answer.patch,
        warnings=answer.warnings,
        audit_annotations=answer.annotations,
    )
    return ReviewJSON(body)


@router.post("/mutate", openapi_extra=openapi.REVIEW)
async def mutate(request: Request) -> Response:
    """Mutating admission: residency tags, and the in-region rewrite where enforcement is rewrite."""
    return await handle(request, "mutate")


@router.post("/validate", openapi_extra=openapi.REVIEW)
async def validate(request: Request) -> Response:
    """Validating admission: decide the final object; deny, warn or audit only, per enforcement."""
    return await handle(request, "validate")


@echo_router.post("/echo", openapi_extra=openapi.REVIEW)
async def echo(request: Request) -> Response:
    """Parse an AdmissionReview and allow it, nothing else: the benchmark's floor for this stack."""
    state: AppState = request.app.state.pe
    seconds = state.settings.validate_deadline_seconds
    try:
        async with asyncio.timeout(seconds):
            review = await read_review(request, state.settings)
    except (rv.ReviewError, BodyProblem) as exc:
        return bad_request("echo", exc)
    except TimeoutError:
        return bad_request("echo", body_timeout(seconds))
    return ReviewJSON(rv.review_response(review.request.uid, True))
