"""`/audit`: the read-only audit page for the DPO (Jinja2 templates, no JavaScript).

Behind the admin audience (`access.ADMIN`: the admin token as a bearer token, or a client certificate
of `--admin-client-ca`); a browser logs in once with the token through a form, which sets a session
cookie (HttpOnly, Secure, SameSite=Strict, path /audit) whose value is an expiry and its HMAC under a
key derived from the admin token, so every worker checks it without shared state and rotating the token
ends every session. With no admin credential configured the page is off (404), as the admin API is.

Pages: the decisions, filtered by period, regime, service, cluster and outcome; one decision with its
regimes, articles, route, remedies, revision and the `explain` steps re-derived under that revision;
chain integrity (`verify`); and the report and transfer record for the current filter as downloads.
`policyengine serve` mounts it (the served policy explains rows of its revision); `policyengine audit
serve` serves it alone, with the policy repos given by `--policy`. Database reads run in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from policyengine.api import access
from policyengine.api.body import BodyProblem, read_body_within
from policyengine.api.settings import Settings
from policyengine.audit.errors import AuditStoreError
from policyengine.audit.query import DECISIONS, ExportFilter, parse_when
from policyengine.audit.signing import SigningKey, SigningKeyError, VerifyKey
from policyengine.audit.trail import AuditTrail
from policyengine.evidence.basis import PolicyBook
from policyengine.evidence.render import environment
from policyengine.evidence.run import collect_report, report_bytes, transfers_bytes
from policyengine.policy import LoadedPolicy, load_policy

router = APIRouter(prefix="/audit", include_in_schema=False)
COOKIE = "pe_audit_session"
SESSION_SECONDS = 8 * 3600
PAGE_SIZE = 50
STATE_ATTRIBUTE = "audit_page"
DOWNLOADS = {
    "report.html": ("report", "html", "text/html; charset=utf-8"),
    "report.pdf": ("report", "pdf", "application/pdf"),
    "transfers.html": ("transfers", "html", "text/html; charset=utf-8"),
    "transfers.pdf": ("transfers", "pdf", "application/pdf"),
    "transfers.csv": ("transfers", "csv", "text/csv; charset=utf-8"),
    "transfers.json": ("transfers", "json", "application/json"),
}


@dataclass
class AuditPage:
    """What the page reads: the trail's URL, the policies that explain rows, the admin token (sessions)
    and the public key of the audit signing key (integrity)."""

    audit_url: str
    policies: Callable[[], list[LoadedPolicy]]
    admin_token: str | None = None
    signing_key: Path | None = None
    _books: dict[tuple[str, ...], PolicyBook] = field(default_factory=dict)

    def book(self) -> PolicyBook:
        """A book of the current policies (kept per set of revisions: deciders compile once)."""
        policies = self.policies()
        key = tuple(p.revision for p in policies)
        if key not in self._books:
            self._books = {key: PolicyBook(policies)}
        return self._books[key]

    def keys(self) -> list[VerifyKey]:
        if self.signing_key is None:
            return []
        try:
            return [SigningKey.load(self.signing_key).public]
        except SigningKeyError:
            return []

    # sessions

    def _mac(self, expires: str) -> str:
        assert self.admin_token
        key = hashlib.sha256(b"policyengine-audit-session\0" + self.admin_token.encode()).digest()
        return hmac.new(key, expires.encode(), hashlib.sha256).hexdigest()

    def session(self) -> str:
        expires = str(int(time.time()) + SESSION_SECONDS)
        return f"{expires}.{self._mac(expires)}"

    def session_ok(self, value: str | None) -> bool:
        if not value or not self.admin_token or "." not in value:
            return False
        expires, _, mac = value.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(mac, self._mac(expires))

    def token_ok(self, token: str) -> bool:
        return bool(self.admin_token) and hmac.compare_digest(token.encode(), str(self.admin_token).encode())


def page_of(request: Request) -> AuditPage:
    page: AuditPage | None = getattr(request.app.state, STATE_ATTRIBUTE, None)
    if page is None:
        off = {"error": "the audit page is off", "remedy": "serve with an audit database"}
        raise access.AccessRefused(JSONResponse(off, status_code=404))
    return page


def _refused(request: Request) -> Response | None:
    """None when the caller may read the page; else the redirect to the login form, or the refusal."""
    page = page_of(request)
    refused = access.refusal(request, access.ADMIN)
    if refused is None or page.session_ok(request.cookies.get(COOKIE)):
        return None
    if refused.status_code == 404:  # no admin credential configured: the page is off
        return refused
    if page.admin_token and request.method == "GET":
        back = urllib.parse.quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"/audit/login?next={back}", status_code=303)
    return refused


def _html(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = environment().get_template(name).render(**context)
    headers = {
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }
    return HTMLResponse(body, status_code=status, headers=headers)


def _problem(what: str, status: int = 400) -> HTMLResponse:
    return _html("page_error.html", status, what=what)


def _filter(request: Request) -> tuple[ExportFilter, dict[str, str]]:
    """The filter of the query string (AuditStoreError naming a bad value) and its non-empty values."""
    q = {k: v.strip() for k, v in request.query_params.items() if v.strip()}
    outcome = q.get("outcome")
    if outcome is not None and outcome not in DECISIONS:
        raise AuditStoreError(f"outcome {outcome!r} is not one of {', '.join(DECISIONS)}")
    flt = ExportFilter(
        since=parse_when(q["since"], option="since") if "since" in q else None,
        until=parse_when(q["until"], option="until") if "until" in q else None,
        regime=q.get("regime"),
        decision=outcome,
        cluster=q.get("cluster"),
        service=q.get("service"),
    )
    shown: dict[str, str] = {k: q[k] for k in ("since", "until", "regime", "service", "cluster", "outcome") if k in q}
    return flt, shown


@router.get("/login")
async def login_form(request: Request, next: str = "/audit") -> Response:
    page_of(request)
    return _html("page_login.html", next=_safe_next(next), problem=None)


def _safe_next(target: str) -> str:
    """Only a path of the page itself (never another site) after logging in."""
    return target if target.startswith("/audit") and "//" not in target and "\\" not in target else "/audit"


@router.post("/login")
async def login(request: Request) -> Response:
    page = page_of(request)
    if not page.admin_token:
        return _problem(
            "logging in needs the admin token (--admin-token-file); present an admin client certificate", 404
        )
    try:
        body = await read_body_within(request, 4096, 10.0, remedy="send the login form")
    except BodyProblem as exc:
        return _problem(exc.what, exc.status)
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/audit"])[0])
    if not page.token_ok(token):
        return _html("page_login.html", 401, next=target, problem="That is not the admin token.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, page.session(), max_age=SESSION_SECONDS, path="/audit", secure=True, httponly=True, samesite="strict"
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/audit/login", status_code=303)
    response.delete_cookie(COOKIE, path="/audit", secure=True, httponly=True, samesite="strict")
    return response


@router.get("")
async def decisions(request: Request) -> Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    page = page_of(request)
    try:
        flt, shown = _filter(request)
        number = max(1, int(request.query_params.get("page") or 1))
    except ValueError as exc:
        return _problem(f"page: {exc}")
    except AuditStoreError as exc:
        return _problem(str(exc))

    def read() -> tuple[ExportFilter, Any, list[dict[str, Any]], set[str], set[str]]:
        book = page.book()
        with AuditTrail.open(page.audit_url) as trail:
            checked = trail.checked_filter(flt, book.regimes(), book.clusters())
            regimes, clusters = trail.known_values()
            totals = trail.totals(checked)
            rows = trail.rows_page(checked, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
        return checked, totals, rows, regimes | book.regimes(), clusters | book.clusters()

    try:
        checked, totals, rows, regimes, clusters = await asyncio.to_thread(read)
    except AuditStoreError as exc:
        return _problem(str(exc))
    query = urllib.parse.urlencode(shown)
    return _html(
        "page_decisions.html",
        rows=rows,
        totals=totals,
        shown=shown,
        query=query,
        number=number,
        pages=max(1, -(-totals.rows // PAGE_SIZE)),
        regimes=sorted(regimes),
        clusters=sorted(clusters),
        outcomes=DECISIONS,
        filters=checked.describe(),
    )


@router.get("/decisions/{decision_id}")
async def decision(request: Request, decision_id: str) -> Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    page = page_of(request)

    def read() -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
        with AuditTrail.open(page.audit_url) as trail:
            row = trail.decision(decision_id)
        if row is None:
            return None, [], False
        book = page.book()
        known = book.decider(str(row["policy_revision"])) is not None
        return row, explained(book, row) if known else [], known

    try:
        row, steps, known = await asyncio.to_thread(read)
    except AuditStoreError as exc:
        return _problem(str(exc))
    if row is None:
        return _problem(f"no decision {decision_id!r} in the trail", 404)
    return _html("page_decision.html", row=row, steps=steps, known=known)


def explained(book: PolicyBook, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The explain steps of each route the row names (its violations' routes, else its own)."""
    routes: list[tuple[str, str, str]] = []
    for v in row.get("violations") or ():
        route = (str(v.get("service") or row["service"]), str(v.get("source") or ""), str(v.get("destination") or ""))
        if route[1] and route[2] and route not in routes:
            routes.append(route)
    if not routes:
        sources = [s for s in str(row.get("source_cluster") or "").split(",") if s]
        for destination in [d for d in str(row.get("destination_cluster") or "").split(",") if d]:
            for source in sources[:1]:
                routes.append((str(row["service"]), source, destination))
    out = []
    when = row["time"] if isinstance(row["time"], datetime) else datetime.now(UTC)
    for service, source, destination in routes[:6]:
        if "/" not in service:
            continue
        try:
            caller = str(row.get("user") or "") if row.get("source") == "routing" else ""
            steps = book.explain(str(row["policy_revision"]), service, source, destination, when, caller)
        except Exception as exc:  # an engine failure shows as such on the page, never as a 500
            steps = {"error": str(exc)}
        out.append({"service": service, "source": source, "destination": destination, "steps": steps})
    return out


@router.get("/integrity")
async def integrity(request: Request) -> Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    page = page_of(request)

    def run() -> Any:
        with AuditTrail.open(page.audit_url) as trail:
            return trail.verify(keys=page.keys())

    try:
        report = await asyncio.to_thread(run)
    except AuditStoreError as exc:
        return _problem(str(exc))
    return _html("page_integrity.html", v=report)


@router.get("/download/{name}")
async def download(request: Request, name: str) -> Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    page = page_of(request)
    if name not in DOWNLOADS:
        return _problem(f"no download {name!r}: one of {', '.join(DOWNLOADS)}", 404)
    what, fmt, media = DOWNLOADS[name]
    try:
        flt, _ = _filter(request)
    except AuditStoreError as exc:
        return _problem(str(exc))

    def build() -> bytes:
        book = page.book()
        with AuditTrail.open(page.audit_url) as trail:
            checked = trail.checked_filter(flt, book.regimes(), book.clusters())
            report = collect_report(trail, checked, book, keys=page.keys(), verify_chains=what == "report")
        return report_bytes(report, fmt) if what == "report" else transfers_bytes(report, fmt)

    try:
        data = await asyncio.to_thread(build)
    except AuditStoreError as exc:
        return _problem(str(exc))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    filename = f"policyengine-{what}-{stamp}.{fmt}"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def mount(app: FastAPI, settings: Settings, policies: Callable[[], list[LoadedPolicy]]) -> None:
    """Serve the page on `app` (the admin audience of `app` guards it)."""
    setattr(
        app.state,
        STATE_ATTRIBUTE,
        AuditPage(settings.audit_url, policies, settings.admin_token, settings.audit_signing_key),
    )
    app.include_router(router)


def create_audit_app(settings: Settings) -> FastAPI:
    """The page alone (`policyengine audit serve`): the trail, the policy repos of the settings, the
    admin audience; nothing else is served."""
    loaded = [load_policy(path) for path in (settings.audit_page_policies or (settings.policies,))]
    app = FastAPI(title="policyengine audit", docs_url=None, redoc_url=None, openapi_url=None)
    setattr(app.state, access.STATE_ATTRIBUTE, access.Access.from_settings(settings))
    mount(app, settings, lambda: loaded)

    @app.exception_handler(access.AccessRefused)
    async def refused(request: Request, exc: access.AccessRefused) -> Response:
        return exc.response

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/audit", status_code=303)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    return app


def audit_app_from_environment() -> FastAPI:
    """The app of a uvicorn worker of `policyengine audit serve` (`factory=True`)."""
    return create_audit_app(Settings.from_environment())
