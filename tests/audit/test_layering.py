"""SQL stays in `policyengine/audit/`: no other module of the package imports SQLAlchemy, psycopg or
Alembic (the migrations, which are the schema's history, excepted). Every import statement is read,
including those inside functions and `if TYPE_CHECKING:` blocks."""

from __future__ import annotations

import ast
from pathlib import Path

import policyengine

PACKAGE = Path(policyengine.__file__).parent
SQL_LIBRARIES = ("sqlalchemy", "psycopg", "psycopg2", "alembic")
ALLOWED = ("audit", "migrations")


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
    return names


def sql_imports_outside_audit() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ALLOWED:
            continue
        for line, name in _imported(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if name.split(".")[0] in SQL_LIBRARIES:
                found.append(f"policyengine/{relative}:{line}: imports {name}")
    return found


def test_no_module_outside_audit_imports_sql_libraries() -> None:
    assert sql_imports_outside_audit() == []


def test_the_scan_sees_a_hidden_import(tmp_path: Path) -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sqlalchemy import Engine\n"
    assert _imported(ast.parse(source)) == [(1, "typing"), (3, "sqlalchemy")]
