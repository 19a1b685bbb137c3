"""Run the real `policyengine` command in a subprocess, as a user or CI would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str, cwd: Path = ROOT, stdin: str | None = None, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`policyengine ARGS` in a subprocess; `stdin` is piped in, `path` replaces $PATH."""
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "policyengine.cli.main", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
