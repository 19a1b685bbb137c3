"""Evidence benchmark: the PDF report over N golden decisions (default 100,000), its time and page count.

The trail is the golden one of the tests (tests/evidence/golden.py: the real rules' decisions, every
regime and outcome, 30 days, the head signed), written into a fresh database. The baseline, measured in
the same run, is `policyengine audit export -o csv` of the same rows (every row read and written): the
report reads only aggregates, so its cost should stay near the CSV's while the PDF stays under 25 pages.
Each command runs in a subprocess, as a user runs it.

Usage: .venv/bin/python bench/evidence.py [--rows 100000] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from databases import fresh_database
from pypdf import PdfReader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from evidence.golden import fill

from policyengine.audit.signing import SigningKey


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "policyengine.cli.main"]
    with fresh_database(args.backend) as url, tempfile.TemporaryDirectory(prefix="pe-evidence-") as tmp:
        where = Path(tmp)
        key = SigningKey.generate()
        key.save(where / "audit.key", where / "audit.pub")
        started = time.perf_counter()
        fill(url, args.rows, key, where / "spool")
        print(f"golden trail: {args.rows} decisions written in {time.perf_counter() - started:.1f} s ({args.backend})")
        csv_s = timed([*cli, "audit", "export", "-o", "csv", "--out", str(where / "all.csv"), "--db", url])
        pdf = where / "report.pdf"
        keys = ["--public-key", str(where / "audit.pub"), "--signing-key", str(where / "audit.key")]
        report_s = timed([*cli, "audit", "export", "-o", "pdf", "--out", str(pdf), "--db", url, *keys])
        pages = len(PdfReader(str(pdf)).pages)
        print(f"csv export (baseline): {csv_s:.1f} s")
        print(f"pdf report: {report_s:.1f} s, {pages} pages, {pdf.stat().st_size // 1024} KiB")
        print(f"report / csv: {report_s / csv_s:.2f}")


if __name__ == "__main__":
    main()
