"""Rendering the evidence: Jinja2 templates (package data) to HTML, WeasyPrint to PDF, and the transfer
record also as CSV and JSON. The HTML is self-contained (inline CSS and SVG, no scripts)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from policyengine.evidence.report import Report, route_text
from policyengine.evidence.transfers import TransferRecord

REPORT_FORMATS = ("html", "pdf")
TRANSFER_FORMATS = ("html", "pdf", "csv", "json")


def _route(row: dict[str, Any]) -> str:
    return route_text(str(row.get("source_cluster") or ""), str(row.get("destination_cluster") or ""))


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("policyengine.evidence", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.globals["route"] = _route
    env.globals["css"] = stylesheet()
    return env


def stylesheet() -> str:
    return resources.files("policyengine.evidence").joinpath("templates/style.css").read_text(encoding="utf-8")


def report_html(report: Report) -> str:
    peak = max((sum(c.values()) for _, c in report.per_day), default=1)
    return environment().get_template("report.html").render(r=report, peak=peak)


def transfers_html(record: TransferRecord, *, period: tuple[str, str], generated_at: str, database: str) -> str:
    return (
        environment()
        .get_template("transfers.html")
        .render(t=record, period=period, generated_at=generated_at, database=database)
    )


def pdf(html: str) -> bytes:
    """The HTML as PDF (WeasyPrint: page counters and target-counter for the table of contents)."""
    from weasyprint import HTML

    data = HTML(string=html).write_pdf()
    assert data is not None
    return bytes(data)


def transfers_csv(record: TransferRecord) -> str:
    rows = record.rows()
    out = io.StringIO()
    columns = list(rows[0]) if rows else ["service"]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def transfers_json(record: TransferRecord, *, period: tuple[str, str]) -> str:
    doc = {
        "period": {"from": period[0], "to": period[1]},
        "as_of": record.as_of,
        "transfers": record.rows(),
        "expiring_within_days": record.expiring_within,
        "expiring": [asdict(m) for m in record.expiring],
        "expired_in_use": [asdict(m) for m in record.expired_in_use],
        "unknown_revisions": record.unknown_revisions,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
