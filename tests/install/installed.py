"""policyengine as a user installs it: the wheel built from a copy of the source (exactly what the
Dockerfile's build stage copies), installed by deploy/build-venv.sh (the script the Dockerfile runs)
into a fresh virtualenv outside the checkout, and commands run from a directory that is not the
checkout, with no PYTHONPATH and the virtualenv not writable by the process (as on the image's
read-only root filesystem: as root, commands run as the image's user 10001).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
IMAGE_UID = 10001
LOCATE = "import pathlib, policyengine; print(pathlib.Path(policyengine.__file__).parent)"


@dataclass(frozen=True)
class Stage:
    """One stage of the Dockerfile: its `FROM` line and its instructions (name, argument text)."""

    base: str
    name: str
    steps: tuple[tuple[str, str], ...]

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.steps if name == instruction]


def dockerfile_stages(path: Path = DOCKERFILE) -> list[Stage]:
    """The stages of a Dockerfile (comments dropped, continuation lines joined)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[Stage] = []
    steps: list[tuple[str, str]] = []
    base = name = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            if base:
                stages.append(Stage(base, name, tuple(steps)))
            parts = args.split()
            base, name, steps = parts[0], parts[2] if len(parts) > 2 else "", []
            continue
        steps.append((instruction, args.strip()))
    if base:
        stages.append(Stage(base, name, tuple(steps)))
    return stages


def build_stage_sources() -> list[str]:
    """What the build stage copies from the repo (`COPY SRC... DEST` lines without --from)."""
    build = dockerfile_stages()[0]
    sources: list[str] = []
    for args in build.all("COPY"):
        parts = args.split()
        if any(p.startswith("--from") for p in parts):
            continue
        sources += [p for p in parts[:-1] if not p.startswith("--")]
    return sources


def copy_sources(target: Path) -> Path:
    """A copy of the files the Dockerfile's build stage copies, at the same relative paths."""
    for source in build_stage_sources():
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(origin, target / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (target / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / source)
    return target


@dataclass
class Installed:
    """A fresh virtualenv holding the installed wheel, and a work directory outside the checkout."""

    venv: Path
    work: Path
    site: Path  # the installed package directory (…/site-packages/policyengine)

    @property
    def as_image_user(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        return ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups", "--"]

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.work / "home"),
            "TMPDIR": str(self.work / "tmp"),
            "LANG": "C.UTF-8",
        }

    def command(self, *args: str) -> list[str]:
        return [*self.as_image_user, str(self.venv / "bin" / "policyengine"), *args]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`policyengine ARGS` from the work directory, as the image's user, with a clean environment."""
        return subprocess.run(
            self.command(*args), cwd=self.work, env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def give(self, path: Path) -> Path:
        """Hand a file or directory in the work dir to the user commands run as."""
        if os.geteuid() == 0:
            for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
                os.chown(item, IMAGE_UID, IMAGE_UID)
        return path


def install(root: Path) -> Installed:
    """Build and install the wheel under `root` (a fresh directory outside the checkout)."""
    source = copy_sources(root / "src")
    venv = root / "venv"
    done = subprocess.run(
        ["sh", str(source / "deploy" / "build-venv.sh"), str(source), str(venv)],
        env={**os.environ, "PYTHON": sys.executable, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise AssertionError(f"deploy/build-venv.sh failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    shutil.rmtree(source)  # nothing of the source tree is left beside the install
    located = subprocess.run(
        [str(venv / "bin" / "python"), "-c", LOCATE],
        cwd=root,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    site = Path(located.stdout.strip())
    for path in [venv, *venv.rglob("*")]:  # readable by all, writable by none but root
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222 | (0o555 if path.is_dir() else 0o444))
    work = root / "work"
    for sub in ("home", "tmp"):
        (work / sub).mkdir(parents=True)
    installed = Installed(venv, work, site)
    installed.give(work)
    return installed


def fresh_root() -> Path:
    """A directory outside the checkout and outside pytest's (root-only) temp tree."""
    root = Path(tempfile.mkdtemp(prefix="policyengine-install-"))
    root.chmod(0o755)
    return root


def remove(root: Path) -> None:
    """Delete an install made by `install` (its virtualenv was made read-only)."""
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(root, ignore_errors=True)
