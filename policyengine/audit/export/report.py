"""The DPO report: one self-contained HTML file (inline CSS and SVG, no scripts, no external fetches),
also rendered to PDF with WeasyPrint.

Everything is computed with aggregate queries, so the report's cost does not grow with memory.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, select_autoescape
from sqlalchemy import Engine, case, func, literal_column, select

from policyengine.audit.chain import as_utc, format_time
from policyengine.audit.export.report_template import TEMPLATE
from policyengine.audit.query import ExportFilter
from policyengine.audit.schema import audit_decision
from policyengine.audit.verify import VerifyReport

T = audit_decision
DENIAL_LIMIT = 500
TOP_LIMIT = 10
COLORS = {"deny": "#c0392b", "rewrite": "#d68910", "allow": "#1e8449"}


@dataclass(slots=True)
class Bar:
    label: str
    counts: dict[str, int]


@dataclass(slots=True)
class ReportData:
    """What the report shows."""

    generated_at: str
    database: str
    filters: dict[str, str | None]
    rows: int = 0
    first: datetime | None = None
    last: datetime | None = None
    by_decision: list[tuple[str, int]] = field(default_factory=list)
    by_regime: list[tuple[str, int, int, int]] = field(default_factory=list)  # regime, total, deny, rewrite
    by_cluster: list[tuple[str, int, int, int]] = field(default_factory=list)
    top_routes: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[Bar] = field(default_factory=list)
    bucket: str = "day"
    denials: list[dict[str, Any]] = field(default_factory=list)
    denials_total: int = 0
    revisions: list[dict[str, Any]] = field(default_factory=list)
    verification: VerifyReport | None = None


def _bucket_expr(dialect: str, hourly: bool) -> Any:
    if dialect == "postgresql":
        pattern = "YYYY-MM-DD HH24:00" if hourly else "YYYY-MM-DD"
        return func.to_char(func.timezone("UTC", T.c.time), pattern)
    return func.strftime("%Y-%m-%d %H:00" if hourly else "%Y-%m-%d", T.c.time)


def collect(engine: Engine, flt: ExportFilter, database: str, verification: VerifyReport | None) -> ReportData:
    """Run the report's queries."""
    where = flt.where()
    data = ReportData(generated_at=format_time(datetime.now(UTC)), database=database, filters=flt.describe())
    data.verification = verification
    deny = func.sum(case((T.c.decision == "deny", 1), else_=0))
    rewrite = func.sum(case((T.c.decision == "rewrite", 1), else_=0))
    with engine.connect() as c:
        total, first, last = c.execute(select(func.count(), func.min(T.c.time), func.max(T.c.time)).where(where)).one()
        data.rows = int(total)
        data.first = as_utc(first) if first else None
        data.last = as_utc(last) if last else None
        data.by_decision = [
            (str(d), int(n))
            for d, n in c.execute(
                select(T.c.decision, func.count()).where(where).group_by(T.c.decision).order_by(func.count().desc())
            )
        ]
        per_regime: Counter[str] = Counter()
        per_regime_deny: Counter[str] = Counter()
        per_regime_rewrite: Counter[str] = Counter()
        for regimes, n, d, r in c.execute(
            select(T.c.regimes, func.count(), deny, rewrite).where(where).group_by(T.c.regimes)
        ):
            for regime in str(regimes).split(",") if regimes else ["(none)"]:
                per_regime[regime] += int(n)
                per_regime_deny[regime] += int(d or 0)
                per_regime_rewrite[regime] += int(r or 0)
        data.by_regime = [(k, v, per_regime_deny[k], per_regime_rewrite[k]) for k, v in per_regime.most_common()]
        data.by_cluster = [
            (str(cl) or "(none)", int(n), int(d or 0), int(r or 0))
            for cl, n, d, r in c.execute(
                select(T.c.cluster, func.count(), deny, rewrite)
                .where(where)
                .group_by(T.c.cluster)
                .order_by(func.count().desc())
            )
        ]
        subject = func.coalesce(func.nullif(T.c.service, ""), T.c.namespace + literal_column("'/'") + T.c.name)
        top = (
            select(
                T.c.decision,
                subject.label("subject"),
                T.c.kind,
                T.c.source_cluster,
                T.c.destination_cluster,
                T.c.cluster,
                func.count().label("n"),
            )
            .where(where, T.c.decision.in_(("deny", "rewrite")))
            .group_by(T.c.decision, subject, T.c.kind, T.c.source_cluster, T.c.destination_cluster, T.c.cluster)
            .order_by(func.count().desc())
            .limit(TOP_LIMIT * 2)
        )
        data.top_routes = [dict(r) for r in c.execute(top).mappings()]
        hourly = bool(data.first and data.last and (data.last - data.first).total_seconds() <= 2 * 86400)
        data.bucket = "hour" if hourly else "day"
        bucket = _bucket_expr(engine.dialect.name, hourly).label("bucket")
        bars: dict[str, dict[str, int]] = {}
        for label, decision, n in c.execute(
            select(bucket, T.c.decision, func.count()).where(where).group_by(bucket, T.c.decision).order_by(bucket)
        ):
            bars.setdefault(str(label), {})[str(decision)] = int(n)
        data.timeline = [Bar(k, v) for k, v in sorted(bars.items())]
        data.denials_total = int(c.execute(select(func.count()).where(where, T.c.decision == "deny")).scalar_one())
        denial_cols = [
            T.c[name]
            for name in (
                "time", "decision_id", "cluster", "kind", "namespace", "name", "service", "source_cluster",
                "destination_cluster", "violations", "permitted_clusters", "enforcement",
            )
        ]  # fmt: skip
        for row in c.execute(
            select(*denial_cols).where(where, T.c.decision == "deny").order_by(T.c.time.desc()).limit(DENIAL_LIMIT)
        ).mappings():
            item = dict(row)
            for name in ("violations", "permitted_clusters"):  # stored as canonical JSON text
                if isinstance(item[name], str):
                    item[name] = json.loads(item[name])
            item["time"] = format_time(item["time"])
            data.denials.append(item)
        data.revisions = [
            {"revision": str(rev), "first": format_time(f), "last": format_time(la), "rows": int(n)}
            for rev, f, la, n in c.execute(
                select(T.c.policy_revision, func.min(T.c.time), func.max(T.c.time), func.count())
                .where(where)
                .group_by(T.c.policy_revision)
                .order_by(func.min(T.c.time))
            )
        ]
    return data


def timeline_svg(data: ReportData, width: int = 760, height: int = 220) -> str:
    """A stacked bar chart (deny, rewrite, allow per bucket) as inline SVG."""
    if not data.timeline:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="760" height="40">'
            '<text x="8" y="24">No decisions.</text></svg>'
        )
    left, bottom, top = 44, 36, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(sum(b.counts.values()) for b in data.timeline) or 1
    step = plot_w / len(data.timeline)
    bar_w = max(1.0, step * 0.8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Decisions per {data.bucket}">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#555"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#555"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    label_every = max(1, len(data.timeline) // 8)
    for i, bar in enumerate(data.timeline):
        x = left + i * step + (step - bar_w) / 2
        y = float(top + plot_h)
        for decision in ("allow", "rewrite", "deny"):
            n = bar.counts.get(decision, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[decision]}"><title>{bar.label}: {n} {decision}</title></rect>'
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" font-size="9" text-anchor="middle">'
                f"{bar.label}</text>"
            )
    legend_x = left
    for decision in ("deny", "rewrite", "allow"):
        parts.append(
            f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{COLORS[decision]}"/>'
            f'<text x="{legend_x + 14}" y="{height - 5}" font-size="10">{decision}</text>'
        )
        legend_x += 80
    parts.append("</svg>")
    return "".join(parts)


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML document."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    template = env.from_string(TEMPLATE)
    return template.render(
        d=data,
        svg=timeline_svg(data),
        first=format_time(data.first) if data.first else "—",
        last=format_time(data.last) if data.last else "—",
        colors=COLORS,
        denial_limit=DENIAL_LIMIT,
    )


def render_pdf(html: str) -> bytes:
    """The same report as PDF (WeasyPrint; needs pango from the system)."""
    from weasyprint import HTML

    pdf = HTML(string=html).write_pdf()
    assert pdf is not None
    return bytes(pdf)
