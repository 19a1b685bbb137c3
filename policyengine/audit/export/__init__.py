"""Exports of the trail: CSV, JSONL, HTML, PDF and PolicyReport, each with a manifest beside it."""

from policyengine.audit.export.run import FORMATS, ExportResult, export

__all__ = ["FORMATS", "ExportResult", "export"]
