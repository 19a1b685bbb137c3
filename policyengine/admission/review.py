"""AdmissionReview v1 in and out: parse a request body strictly, build the response the API server expects.

Parsing never raises anything but `ReviewError`, whose `message` says what was wrong, where (a JSON path)
and what to send instead, and whose `reason` is a short label for metrics. Responses follow
`admission.k8s.io/v1`: the `uid` is echoed, patches are base64 RFC 6902 with `patchType: JSONPatch`,
denials carry `status.code` 403 and warnings are cut to 120 characters.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from policyengine import bounded_json

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's own request limit
WARNING_LIMIT = 120


class ReviewError(Exception):
    """A request body that is not a usable AdmissionReview v1. Answered with HTTP 400 and `message`.

    `where` is the JSON path (or "(body)") when known: what the server log shows, since `message` may
    quote the request's own values.
    """

    def __init__(self, reason: str, message: str, where: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.where = where


# Longest values Kubernetes gives these fields (names are DNS subdomains, namespaces DNS labels) and the
# audit trail keeps; a review with a longer one is refused at the edge, not by the database later.
MAX_NAME = 253
MAX_NAMESPACE = 63
MAX_KIND = 128
MAX_API_VERSION = 128
MAX_USERNAME = 512
MAX_UID = 128


class GroupVersionKind(BaseModel):
    """`request.kind`: which kind the object is (`group` is empty for the core group)."""

    model_config = ConfigDict(extra="allow")
    group: str = Field(default="", max_length=MAX_NAME)
    version: str = Field(min_length=1, max_length=MAX_NAMESPACE)
    kind: str = Field(min_length=1, max_length=MAX_KIND)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


class UserInfo(BaseModel):
    """Who sent the request to the API server."""

    model_config = ConfigDict(extra="allow")
    username: str = Field(default="", max_length=MAX_USERNAME)
    uid: str = ""
    groups: list[str] = Field(default_factory=list)


class AdmissionRequest(BaseModel):
    """`request` of an AdmissionReview v1 (only the fields the webhook reads are typed)."""

    model_config = ConfigDict(extra="allow")
    uid: str = Field(min_length=1, max_length=MAX_UID)
    kind: GroupVersionKind
    name: str = Field(default="", max_length=MAX_NAME)
    namespace: str = Field(default="", max_length=MAX_NAMESPACE)
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    userInfo: UserInfo = Field(default_factory=UserInfo)
    object: dict[str, Any] | None = None
    oldObject: dict[str, Any] | None = None
    dryRun: bool = False

    @property
    def dry_run(self) -> bool:
        return self.dryRun

    @property
    def username(self) -> str:
        return self.userInfo.username


class AdmissionReview(BaseModel):
    """A whole AdmissionReview v1 request."""

    model_config = ConfigDict(extra="allow")
    apiVersion: str
    kind: str
    request: AdmissionRequest


def check_content_type(content_type: str | None) -> None:
    """Refuse anything but `application/json` (parameters such as charset are fine)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        shown = content_type or "none"
        raise ReviewError(
            "content_type",
            f"Content-Type {shown!r} is not accepted: send the AdmissionReview as application/json",
        )


def _path(loc: Sequence[int | str]) -> str:
    parts = ["request" if i == 0 and p == "request" else str(p) for i, p in enumerate(loc)]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "(body)"


def parse_review(
    body: bytes, content_type: str | None, max_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> AdmissionReview:
    """Parse and check a request body; raise `ReviewError` with an actionable message otherwise."""
    check_content_type(content_type)
    if len(body) > max_bytes:
        raise ReviewError("too_large", too_large_message(len(body), max_bytes))
    try:
        raw = bounded_json.parse(body)
    except bounded_json.JsonRefused as exc:
        raise ReviewError(exc.reason, f"{exc.message}; send an AdmissionReview v1 object", exc.where) from None
    if not isinstance(raw, dict):
        raise ReviewError(
            "shape", f"body is a JSON {type(raw).__name__}, expected an AdmissionReview object", "(body)"
        )
    if raw.get("apiVersion") != API_VERSION:
        raise ReviewError(
            "api_version",
            f"apiVersion {raw.get('apiVersion')!r} is not supported: send {API_VERSION} "
            "(set admissionReviewVersions: [v1] in the webhook configuration)",
            "apiVersion",
        )
    if raw.get("kind") != KIND:
        raise ReviewError("kind", f"kind {raw.get('kind')!r} is not {KIND}", "kind")
    request = raw.get("request")
    if request is None:
        raise ReviewError("missing_request", "AdmissionReview has no `request`: nothing to review", "request")
    if not isinstance(request, dict):
        raise ReviewError("shape", f"`request` is a JSON {type(request).__name__}, expected an object", "request")
    if not request.get("uid"):
        raise ReviewError("missing_uid", "`request.uid` is missing or empty: the response must echo it", "request.uid")
    try:
        return AdmissionReview.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        where = _path(first["loc"])
        raise ReviewError(
            "shape", f"{where}: {first['msg']}{more}; expected an AdmissionReview v1 request", where
        ) from None


def too_large_message(size: int, max_bytes: int) -> str:
    return (
        f"body of {size} bytes is over the limit of {max_bytes} bytes "
        "(raise --max-body-bytes if your objects are this large)"
    )


def check_object(request: AdmissionRequest) -> dict[str, Any] | None:
    """The object under review, checked for the few fields every object has; None on DELETE."""
    obj = request.object
    if obj is None:
        if request.operation in ("CREATE", "UPDATE"):
            raise ReviewError("shape", f"request.object is missing on {request.operation}", "request.object")
        return None
    for key, longest in (("apiVersion", MAX_API_VERSION), ("kind", MAX_KIND)):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            raise ReviewError("shape", f"request.object.{key} is missing or not a string", f"request.object.{key}")
        if len(obj[key]) > longest:
            raise ReviewError(
                "shape", f"request.object.{key} is longer than {longest} characters", f"request.object.{key}"
            )
    if obj["kind"] != request.kind.kind:
        raise ReviewError(
            "shape",
            f"request.object.kind {obj['kind']!r} differs from request.kind.kind {request.kind.kind!r}",
            "request.object.kind",
        )
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ReviewError("shape", "request.object.metadata is not an object", "request.object.metadata")
    for key, longest in (("name", MAX_NAME), ("generateName", MAX_NAME), ("namespace", MAX_NAMESPACE)):
        value = metadata.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > longest):
            where = f"request.object.metadata.{key}"
            raise ReviewError("shape", f"{where} must be a string of at most {longest} characters", where)
    for key in ("labels", "annotations"):
        value = metadata.get(key)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
        ):
            raise ReviewError(
                "shape", f"request.object.metadata.{key} must map strings to strings", f"request.object.metadata.{key}"
            )
    return obj


def short_warning(text: str) -> str:
    """One warning of at most 120 characters (the API server's advice), cut with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= WARNING_LIMIT else flat[: WARNING_LIMIT - 1] + "…"


def review_response(
    uid: str,
    allowed: bool,
    *,
    code: int | None = None,
    message: str | None = None,
    reason: str | None = None,
    patch: Sequence[Mapping[str, Any]] = (),
    warnings: Iterable[str] = (),
    audit_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The AdmissionReview v1 response body for request `uid`."""
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed or message:
        status: dict[str, Any] = {"code": code or (403 if not allowed else 200)}
        if message:
            status["message"] = message
        if reason:
            status["reason"] = reason
        response["status"] = status
    if patch:
        encoded = json.dumps(list(patch), separators=(",", ":")).encode()
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(encoded).decode()
    unique: list[str] = []
    for warning in warnings:
        short = short_warning(warning)
        if short and short not in unique:
            unique.append(short)
    if unique:
        response["warnings"] = unique
    if audit_annotations:
        response["auditAnnotations"] = dict(audit_annotations)
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def error_body(message: str) -> dict[str, Any]:
    """The JSON body of a 400 answer (not an AdmissionReview: the API server treats it as a call failure)."""
    return {"error": message}
