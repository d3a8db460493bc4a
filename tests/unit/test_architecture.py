"""The layering rules of design.md, enforced: the core works on plain values, cogs do no SQL and no HTTP."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQL = re.compile(r"""["']\s*(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b""", re.I)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_discord():
    allowed = {"app.py", "__main__.py"}
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "bot").rglob("*.py")
        if p.name not in allowed and "discord" in imported_modules(p)
    ]
    assert offenders == []


def test_cogs_do_no_sql_and_no_http():
    offenders = []
    for path in (ROOT / "cogs").rglob("*.py"):
        modules = imported_modules(path)
        text = path.read_text()
        if modules & {"aiohttp", "aiosqlite", "sqlite3"} or SQL.search(text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_code_passes_the_linter_and_formatter():
    import subprocess
    import sys

    for args in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
