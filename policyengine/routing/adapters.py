"""What a proxy sends to `/v1/authz` and what it gets back, for Envoy ext_authz and nginx auth_request.

Both proxies send the original request's headers: Envoy's ext_authz HTTP service calls
`/v1/authz/<original path>` with the original method and headers (`Host` carries `:authority`); nginx's
auth_request sends a GET subrequest with `X-Original-Method`, `X-Original-URI`, `Host` and the source
header. The source identity is the configured header (`x-policyengine-source` by default), else the
last element of `x-forwarded-client-cert`: its `URI=`, or the URI SAN of its `Cert=` (see
`routing.identity`). Only a trusted hop may set either: the proxy configs in deploy/proxies/ clear what
the client sent and set them from the verified client certificate. `Sec-GPC: 1` is a sale/share opt-out.

The answer is 200 with `x-policyengine-cluster` and `x-policyengine-decision-id`, or 403 with a JSON
body (and the same JSON, compact, in `x-policyengine-denial` for proxies that drop the body, as nginx
does) naming the regime, article, clusters and remedy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policyengine.decision import Decision
from policyengine.routing.identity import (
    RequestProblem,
    SourceIdentity,
    identity_from_xfcc,
    parse_host,
    parse_identity,
)

DEFAULT_SOURCE_HEADER = "x-policyengine-source"
PREFER_HEADER = "x-policyengine-prefer-cluster"  # a request may ask for a cluster; honoured if permitted
CLUSTER_HEADER = "x-policyengine-cluster"
DECISION_ID_HEADER = "x-policyengine-decision-id"
DENIAL_HEADER = "x-policyengine-denial"
MAX_DENIAL_HEADER = 3072  # keep well under proxies' header buffers (nginx proxy_buffer_size 4k/8k)
MAX_URI_LENGTH = 8192


@dataclass(frozen=True, slots=True)
class AuthzRequest:
    """One request to judge, whichever proxy sent it."""

    source: SourceIdentity
    host: str
    opt_out: bool
    method: str
    path: str
    prefer: str | None = None
    proxy: str = "envoy"  # "envoy" or "nginx"


def read_authz_request(
    headers: Mapping[str, str],
    method: str,
    path_after_prefix: str,
    source_header: str = DEFAULT_SOURCE_HEADER,
) -> AuthzRequest:
    """Parse the proxy's request; raise `RequestProblem` saying which header is missing or malformed.

    `headers` must be case-insensitive (Starlette's `Headers` is).
    """
    original_uri = headers.get("x-original-uri")
    if original_uri is not None:  # nginx auth_request
        proxy = "nginx"
        original_method = (headers.get("x-original-method") or "").strip().upper()
        if not original_method:
            raise RequestProblem(
                "X-Original-URI is set but X-Original-Method is missing",
                "X-Original-Method",
                "add proxy_set_header X-Original-Method $request_method; to the auth_request location",
            )
        uri = original_uri
    else:  # Envoy ext_authz HTTP: the original method and path under the prefix
        proxy = "envoy"
        original_method = method.upper()
        uri = "/" + path_after_prefix.lstrip("/") if path_after_prefix else "/"
    if len(uri) > MAX_URI_LENGTH:
        raise RequestProblem(
            f"the original URI is {len(uri)} bytes, more than {MAX_URI_LENGTH}",
            "X-Original-URI",
            "send a shorter URI",
        )

    authority = headers.get("host")
    if authority is None:
        raise RequestProblem(
            "no Host header", "Host", "send the original Host (nginx: proxy_set_header Host $host;)"
        )
    host = parse_host(authority, "Host")

    raw_source = headers.get(source_header)
    where = source_header
    if raw_source is None:
        xfcc = headers.get("x-forwarded-client-cert")
        if xfcc is not None:
            raw_source = identity_from_xfcc(xfcc)
            where = "x-forwarded-client-cert"
            if raw_source is None:
                raise RequestProblem(
                    "x-forwarded-client-cert names no URI for the nearest client (no URI=, no URI SAN in Cert=)",
                    where,
                    "have the client present a SPIFFE certificate (Envoy: forward its URI in XFCC; "
                    "nginx: Cert=$ssl_client_escaped_cert)",
                )
    if raw_source is None:
        raise RequestProblem(
            "no source identity",
            f"{source_header} / x-forwarded-client-cert",
            f"send the caller's SPIFFE ID in {source_header}, or have Envoy forward x-forwarded-client-cert",
        )
    source = parse_identity(raw_source, where)

    gpc_raw = (headers.get("sec-gpc") or "").strip()
    if gpc_raw not in ("", "1", "0"):
        raise RequestProblem(f"Sec-GPC is {gpc_raw[:20]!r}", "Sec-GPC", "send Sec-GPC: 1 or leave it out")
    prefer = (headers.get(PREFER_HEADER) or "").strip() or None
    if prefer is not None and len(prefer) > 253:
        raise RequestProblem("the preferred cluster name is too long", PREFER_HEADER, "send a cluster name")
    return AuthzRequest(
        source=source,
        host=host,
        opt_out=gpc_raw == "1",
        method=original_method,
        path=uri,
        prefer=prefer,
        proxy=proxy,
    )


def denial_body(
    reason: str,
    *,
    decision: Decision | None = None,
    source: str | None = None,
    destination: str | None = None,
    remedy: str | None = None,
) -> dict[str, Any]:
    """The JSON of a 403: the reason, and each violation's regime, article, clusters and remedy."""
    body: dict[str, Any] = {"allowed": False, "reason": reason}
    if source is not None:
        body["source"] = source
    if destination is not None:
        body["destination"] = destination
    if remedy is not None:
        body["remedy"] = remedy
    if decision is not None:
        body["decision_id"] = decision.decision_id
        body["policy_revision"] = decision.policy_revision
        body["regimes"] = list(decision.regimes)
        body["permitted_clusters"] = list(decision.permitted_clusters)
        body["violations"] = [
            {
                "regime": v.regime,
                "rule": v.rule,
                "article": v.article,
                "cluster": v.cluster,
                "message": v.message,
                "remedy": v.remedy,
            }
            for v in decision.violations
        ]
    return body


def denial_header(body: Mapping[str, Any]) -> str:
    """The denial as one compact ASCII header value, cut to what proxies can carry."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    if len(text) <= MAX_DENIAL_HEADER:
        return text
    short: dict[str, Any] = {k: body[k] for k in ("allowed", "reason", "decision_id") if k in body}
    violations = body.get("violations") or []
    short["violations"] = [
        {k: str(v[k])[:120] for k in ("regime", "article", "cluster", "remedy") if k in v}
        for v in violations[:3]
    ]
    text = json.dumps(short, separators=(",", ":"), ensure_ascii=True)
    if len(text) <= MAX_DENIAL_HEADER:
        return text
    return json.dumps({"allowed": False, "reason": str(body.get("reason", ""))[:1000]}, ensure_ascii=True)
