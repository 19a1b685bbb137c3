"""The server's OpenAPI document, with every request body and header an endpoint reads.

Endpoints read their bodies themselves (bounded in size, time and JSON depth: `policyengine/api/body.py`),
so FastAPI cannot infer them from parameters. Each route declares what it takes with the `openapi_extra`
pieces here, and `document(app, schemas)` adds the component schemas, generated from the same pydantic
models the endpoints validate with. Schema-driven fuzzers (schemathesis) and clients then see the
AdmissionReview of the webhooks, the route of `/v1/decide` and the headers of `/v1/authz`.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

REF = "#/components/schemas/{model}"

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what was wrong, where (a JSON path or header)"},
        "remedy": {"type": "string", "description": "what to send instead"},
    },
}


def _json_body(model: str, description: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}},
    }


def _responses(ok: str, **others: str) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": ok}}
    for code, text in others.items():
        out[code.lstrip("_")] = {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    return out


REVIEW = {
    "requestBody": _json_body(
        "AdmissionReview",
        "An AdmissionReview v1 request, as the API server sends it (at most --max-body-bytes, nesting at "
        "most 64 deep, integers within 64 bits, strings without NUL or lone surrogates).",
    ),
    "responses": _responses(
        "The AdmissionReview v1 response (allowed, or refused with status.code 403)",
        _400="Not a usable AdmissionReview: the error names the JSON path",
        _401="A client certificate is required (--client-ca)",
        _408="The body did not arrive within the deadline",
        _413="The body is over --max-body-bytes",
    ),
}

ROUTE = {
    "requestBody": _json_body("RouteIn", "One route to judge (at most 64 KiB)."),
    "responses": _responses(
        "The Decision",
        _400="Not JSON, or JSON outside the bounds: the error names the JSON path",
        _401="Credentials are required (--api-token-file, --api-client-ca)",
        _413="The body is over 64 KiB",
        _422="JSON that is not a route: each problem names its field",
    ),
}


def _header(name: str, description: str, *, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        schema["pattern"] = pattern
    return {"name": name, "in": "header", "required": False, "description": description, "schema": schema}


AUTHZ = {
    "parameters": [
        _header("host", "The destination: a Kubernetes service DNS name (name.namespace.svc...)"),
        _header("x-policyengine-source", "The caller's SPIFFE ID or namespace/name (set by a trusted hop only)"),
        _header(
            "x-forwarded-client-cert",
            "Envoy's XFCC of the verified client certificate: its URI= (or the URI SAN of Cert=) is the caller",
        ),
        _header("x-original-uri", "nginx auth_request: the original request URI"),
        _header("x-original-method", "nginx auth_request: the original method"),
        _header("x-policyengine-prefer-cluster", "A cluster the caller would like, honoured when permitted"),
        _header("sec-gpc", "1: the consumer opted out of sale/sharing (CCPA)", pattern="^[01]?$"),
    ],
    "responses": {
        "200": {"description": "Allowed: x-policyengine-cluster names the cluster to use"},
        "401": {"description": "Credentials are required (--api-token-file, --api-client-ca)"},
        "403": {"description": "Refused: the JSON body (and x-policyengine-denial) says why"},
    },
}


AUTHZ_PATH = {
    **AUTHZ,
    "parameters": [
        {
            "name": "path",
            "in": "path",
            "required": True,
            "description": "Envoy ext_authz: the original request's path, after the /v1/authz prefix",
            "schema": {"type": "string"},
        },
        *AUTHZ["parameters"],
    ],
}


def document(app: FastAPI, schemas: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """The OpenAPI document of `app`, with `schemas` (name -> model) as component schemas."""
    with warnings.catch_warnings():  # /v1/authz is one route for every method: its ids are made unique below
        warnings.simplefilter("ignore", UserWarning)
        doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            operation["operationId"] = f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_') or 'root'}"
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, model in schemas.items():
        schema = model.model_json_schema(ref_template=REF)
        components.update(schema.pop("$defs", {}))
        components[name] = schema
    doc["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "a token of --api-token-file"},
        "clientCertificate": {"type": "mutualTLS", "description": "a certificate issued by --api-client-ca"},
    }
    return doc
