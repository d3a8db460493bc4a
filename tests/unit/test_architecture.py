"""The layering rules of design.md, enforced: the core works on plain values, cogs do no SQL and no HTTP, errors are
a leaf, providers know nothing of quotas or scheduling, each table has one owner, and the code type-checks."""

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


def imported_names(path: Path) -> set[str]:
    """Full dotted names of the absolute imports of a module (`from bot.quota import x` gives `bot.quota`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders_importing(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{p.relative_to(ROOT)}: {name}"
        for p in paths
        for name in imported_names(p)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


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


def test_errors_are_a_leaf():
    assert offenders_importing([ROOT / "bot" / "errors.py"], ("bot", "cogs")) == []


def test_providers_know_nothing_of_quotas_or_scheduling():
    paths = list((ROOT / "bot" / "providers").rglob("*.py"))
    assert offenders_importing(paths, ("bot.quota", "bot.scheduler", "bot.pipeline", "cogs")) == []


def test_the_core_never_imports_the_discord_side():
    allowed = {"app.py", "__main__.py"}
    paths = [p for p in (ROOT / "bot").rglob("*.py") if p.name not in allowed]
    assert offenders_importing(paths, ("cogs",)) == []


# Each table is written and read by one module (or package): everyone else calls it.
TABLE_OWNERS = {
    r"generations|generation_inputs|generation_turns": ("bot/editing/generations.py",),
    r"quota_\w+": (
        "bot/quota/ledger.py",
        "bot/quota/facts.py",
        "bot/quota/admin.py",
        "bot/quota/access.py",
        "bot/quota/records.py",
    ),
    r"moderation_appeals": ("bot/moderation/appeals.py",),
    r"moderation_(?!appeals\b)\w+": ("bot/moderation/store.py", "bot/moderation/records.py"),
    r"server_settings": ("bot/ops/server_settings.py",),
    r"relax_jobs": ("bot/relax/store.py",),
    # The ledger's recovery reads the leases in the same statement as its refunds (bot.storage.leases).
    r"process_leases": ("bot/storage/leases.py", "bot/quota/ledger.py"),
}


def test_each_table_has_one_owner():
    offenders = []
    for pattern, owners in TABLE_OWNERS.items():
        table = re.compile(rf"\b(FROM|INTO|UPDATE|JOIN)\s+({pattern})\b", re.I)
        for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "cogs").rglob("*.py")]:
            where = str(path.relative_to(ROOT))
            if where not in owners and table.search(path.read_text()):
                offenders.append(where)
    assert offenders == []


def test_the_code_type_checks():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_passes_the_linter_and_formatter():
    import subprocess
    import sys

    for args in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
