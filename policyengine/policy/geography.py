"""Jurisdictions and groups resolved: group members expanded, and what each place is `in`.

`in` of a jurisdiction lists itself, its parents, and every group that contains any of them (directly
or through another group): DE is in [DE, EEA, EU]; US-CA is in [US, US-CA].
"""

from __future__ import annotations

from collections.abc import Iterable

from policyengine.policy.models import JurisdictionsFile


class Geography:
    """Lookups over jurisdictions.yaml. Unknown names and cycles are tolerated (the loader reports them)."""

    def __init__(self, source: JurisdictionsFile) -> None:
        self.names: dict[str, str] = {j.code: j.name for j in source.jurisdictions}
        self.parents: dict[str, str | None] = {j.code: j.parent for j in source.jurisdictions}
        self.group_members: dict[str, list[str]] = dict(source.groups)
        self.groups: dict[str, tuple[str, ...]] = {
            g: self._expand_group(g, set()) for g in self.group_members
        }
        self._in: dict[str, tuple[str, ...]] = {code: self._containers(code) for code in self.names}

    def is_jurisdiction(self, name: str) -> bool:
        return name in self.names

    def is_group(self, name: str) -> bool:
        return name in self.group_members

    def known(self, name: str) -> bool:
        return name in self.names or name in self.group_members

    def _expand_group(self, group: str, seen: set[str]) -> tuple[str, ...]:
        seen = seen | {group}
        out: set[str] = set()
        for member in self.group_members.get(group, []):
            if member in self.group_members:
                if member not in seen:
                    out.update(self._expand_group(member, seen))
            else:
                out.add(member)
        return tuple(sorted(out))

    def ancestors(self, code: str) -> list[str]:
        """The code and its parents, nearest first (stops at a cycle)."""
        chain = [code]
        parent = self.parents.get(code)
        while parent is not None and parent not in chain:
            chain.append(parent)
            parent = self.parents.get(parent)
        return chain

    def _containers(self, code: str) -> tuple[str, ...]:
        chain = self.ancestors(code)
        found = set(chain)
        for group, members in self.groups.items():
            if any(c in members for c in chain):
                found.add(group)
        return tuple(sorted(found))

    def within(self, code: str) -> tuple[str, ...]:
        """What `code` is in (itself, parents, groups); for a group, the group and its containers."""
        if code in self._in:
            return self._in[code]
        if code in self.groups:
            return tuple(
                sorted(
                    {code}
                    | {
                        g
                        for g, m in self.groups.items()
                        if set(self.groups[code]) <= set(m) and self.groups[code]
                    }
                )
            )
        return (code,)

    def expand(self, names: Iterable[str]) -> tuple[str, ...]:
        """Jurisdictions and groups -> the sorted set of jurisdiction codes they stand for."""
        out: set[str] = set()
        for name in names:
            out.update(self.groups.get(name, (name,)))
        return tuple(sorted(out))

    def cycle_in_parents(self, code: str) -> bool:
        seen = [code]
        parent = self.parents.get(code)
        while parent is not None:
            if parent in seen:
                return True
            seen.append(parent)
            parent = self.parents.get(parent)
        return False

    def cycle_in_group(self, group: str) -> bool:
        def visit(g: str, path: tuple[str, ...]) -> bool:
            for m in self.group_members.get(g, []):
                if m in path:
                    return True
                if m in self.group_members and visit(m, (*path, m)):
                    return True
            return False

        return visit(group, (group,))
