"""A ConfigMap volume as the kubelet writes it, for real on disk (pkg/volume/util/atomic_writer.go).

The kubelet never edits a mounted file. For each update it writes every key into a fresh timestamped
directory `..2026_12_01_10_00_00.123456789`, points a new symlink `..data_tmp` at it and renames that
over `..data` (one atomic step), makes the user-visible names (`transfers.yaml -> ..data/transfers.yaml`)
for keys that are new, removes those of keys that are gone, and deletes the previous directory. A
reader that follows the visible names sees the old content or the new, and mtimes are those of the new
files. A test double only in that no kubelet runs here; the file operations are the kubelet's.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

DATA = "..data"


class ConfigMapVolume:
    """The mount point of a ConfigMap volume; `update(data)` is one kubelet sync of new content."""

    def __init__(self, root: Path, data: Mapping[str, str]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.update(data)

    def update(self, data: Mapping[str, str]) -> None:
        old_link = self.root / DATA
        old_dir = os.readlink(old_link) if old_link.is_symlink() else None
        old_keys = set(self.keys())
        stamp = dt.datetime.now(dt.UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
        new_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=self.root))
        new_dir.chmod(0o755)
        for key, text in data.items():
            (new_dir / key).write_text(text)
            (new_dir / key).chmod(0o644)
        tmp_link = self.root / "..data_tmp"
        tmp_link.symlink_to(new_dir.name)
        os.rename(tmp_link, old_link)  # the atomic swap
        for key in data:
            visible = self.root / key
            if not visible.is_symlink():
                visible.symlink_to(f"{DATA}/{key}")
        for key in old_keys - set(data):
            (self.root / key).unlink()
        if old_dir is not None:
            shutil.rmtree(self.root / old_dir)

    def keys(self) -> list[str]:
        link = self.root / DATA
        if not link.is_symlink():
            return []
        return sorted(p.name for p in (self.root / os.readlink(link)).iterdir())

    def read(self, key: str) -> str:
        return (self.root / key).read_text()


def data_of(directory: Path) -> dict[str, str]:
    """A ConfigMap's data from a policy directory (what configMapGenerator files: makes)."""
    return {p.name: p.read_text() for p in sorted(directory.glob("*.yaml"))}
