"""The command line as an operator uses it: real processes, the fake Gemini on 127.0.0.1."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import sys
from pathlib import Path

from tests.fakes.gemini import FakeGemini, GeminiReply
from tests.fakes.gemini_images import png_bytes

ROOT = Path(__file__).resolve().parents[2]


async def run(*args: str, cwd: Path, **env: str) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "GEMINI_"))}
    clean["PYTHONPATH"] = str(ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_without_secrets_the_bot_says_what_to_set_and_where(tmp_path):
    code, out, err = await run(cwd=tmp_path)
    assert code == 2 and "Traceback" not in err
    assert "DISCORD_TOKEN is not set" in err and "GEMINI_API_KEY is not set" in err
    assert "discord.com/developers/applications" in err and "aistudio.google.com/apikey" in err


async def test_check_names_a_bad_setting_and_never_prints_secrets(tmp_path):
    secrets = {"DISCORD_TOKEN": "tok-very-secret-1", "GEMINI_API_KEY": "key-very-secret-2"}
    code, out, err = await run("check", cwd=tmp_path, **secrets, DAILY_QUOTA="lots")
    assert code == 2 and "DAILY_QUOTA" in err
    async with FakeGemini(api_key=secrets["GEMINI_API_KEY"]) as gemini:  # check lists the models with the key
        code, out, err = await run("check", cwd=tmp_path, **secrets, GEMINI_BASE_URL=gemini.base_url)
    assert code == 0 and "DAILY_QUOTA = 10" in out
    assert "very-secret" not in out + err
    assert "Relax lane: Flex (3 tries), then Batch, through gemini; 10 credits a day per member" in out


async def test_check_says_when_relax_is_off_or_impossible(tmp_path):
    secrets = {"DISCORD_TOKEN": "tok-very-secret-1", "GEMINI_API_KEY": "key-very-secret-2"}
    async with FakeGemini(api_key=secrets["GEMINI_API_KEY"]) as gemini:
        code, out, _ = await run(
            "check", cwd=tmp_path, **secrets, GEMINI_BASE_URL=gemini.base_url, RELAX_DAILY_QUOTA="0"
        )
    assert code == 0 and "Relax lane: off (RELAX_DAILY_QUOTA=0)" in out
    gateway = {
        "PROVIDERS": "gw",
        "PROVIDER_GW_KIND": "openai-chat",
        "PROVIDER_GW_BASE_URL": "https://gateway.example/v1",
        "PROVIDER_GW_API_KEY": "sk-very-secret-3",
    }
    code, out, err = await run("check", cwd=tmp_path, DISCORD_TOKEN="tok-very-secret-1", **gateway)
    assert code == 0 and "Relax lane: unavailable: Flex and Batch need the gemini provider" in out
    assert "very-secret" not in out + err


async def test_generate_makes_one_image_through_the_pipeline_without_discord(tmp_path):
    picture = png_bytes(1344, 768, seed=3)
    async with FakeGemini() as gemini:
        gemini.enqueue(GeminiReply.image(picture, text="A fox."))
        code, out, err = await run(
            "generate",
            "a red fox",
            "--aspect-ratio",
            "16:9",
            "-o",
            "fox.png",
            cwd=tmp_path,
            GEMINI_API_KEY=gemini.api_key,
            GEMINI_BASE_URL=gemini.base_url,
            DATABASE_PATH=str(tmp_path / "db.sqlite3"),
        )
        assert code == 0, err
        assert (tmp_path / "fox.png").read_bytes() == picture
        assert "The model says: A fox." in out
        (call,) = gemini.served
        assert call.prompt == "a red fox" and call.aspect_ratio == "16:9"
        assert gemini.api_key not in out + err

        gemini.enqueue(GeminiReply.prompt_blocked("SAFETY"))
        code, out, err = await run(
            "generate",
            "something",
            cwd=tmp_path,
            GEMINI_API_KEY=gemini.api_key,
            GEMINI_BASE_URL=gemini.base_url,
            DATABASE_PATH=str(tmp_path / "db.sqlite3"),
        )
        assert code == 1 and "Google's safety filter refused" in err and "Traceback" not in err


async def test_generate_beside_a_running_bot_leaves_its_open_reservations_alone(tmp_path, db):
    from bot.models import ImageRequest
    from bot.quota.ledger import QuotaLedger

    ledger = QuotaLedger(db, daily_quota=5)
    held = await ledger.reserve(ImageRequest(user_id=1, channel_id=2, prompt="a fox", guild_id=3))
    async with FakeGemini() as gemini:
        code, out, err = await run(
            "generate",
            "a cat",
            "-o",
            "cat.png",
            cwd=tmp_path,
            GEMINI_API_KEY=gemini.api_key,
            GEMINI_BASE_URL=gemini.base_url,
            DATABASE_URL=db.url,
        )
    assert code == 0, err
    assert await ledger.commit(held, 1, 0.039)  # still open: the CLI did not refund the bot's request


async def test_report_needs_no_secrets_and_writes_the_chart_and_rows(tmp_path):
    async with FakeGemini() as gemini:  # one image, made by the CLI, so the ledger has a day to report
        env = {"GEMINI_API_KEY": gemini.api_key, "GEMINI_BASE_URL": gemini.base_url}
        code, _, err = await run("generate", "a fox", cwd=tmp_path, DATABASE_PATH="db.sqlite3", **env)
        assert code == 0, err
    code, out, err = await run("report", "--days", "7", "--out", "out", cwd=tmp_path, DATABASE_PATH="db.sqlite3")
    assert code == 0, err
    assert out.startswith("Usage of the whole bot, last 7 days")
    cost = re.search(r"^Images 1 · credits 1 · cost \$(\d+\.\d{3})$", out, re.M)
    assert cost is not None, out
    assert (tmp_path / "out" / "usage-all-7d.png").read_bytes().startswith(b"\x89PNG")
    rows = list(csv.DictReader((tmp_path / "out" / "usage-all-7d.csv").open()))
    assert len(rows) == 7 and sum(int(r["images"]) for r in rows) == 1
    assert f"{sum(float(r['cost_usd']) for r in rows):.3f}" == cost.group(1)  # the real cost, as the table says


def test_log_output_never_carries_the_secrets(capsys):
    import logging
    import sys
    import threading

    from bot.__main__ import setup_logging  # what `python -m bot` sets up (bot.ops.logs.configure_logging)
    from bot.config import Settings

    settings = Settings(
        _env_file=None,
        discord_token="tok-very-secret-1",
        gemini_api_key="key-very-secret-2",
        database_url="postgresql://bot:pw-very-secret-3@db/bot",
    )
    hooks = (sys.excepthook, threading.excepthook)
    setup_logging(settings)
    try:
        logging.getLogger("discord.http").warning("sent Authorization: Bot %s", "tok-very-secret-1")
        logging.getLogger("aiohttp.client").error("url ...?key=key-very-secret-2 failed")
        logging.getLogger("asyncpg").error("password authentication failed: pw-very-secret-3")
    finally:
        logging.basicConfig(handlers=[], force=True)
        logging.captureWarnings(False)
        sys.excepthook, threading.excepthook = hooks
    err = capsys.readouterr().err
    assert "very-secret" not in err and err.count("[redacted]") == 3


async def test_migrate_brings_either_database_up_to_date_and_hides_the_password(tmp_path, postgres_server):
    from bot.storage.db import migrations

    latest = migrations()[-1]
    code, out, err = await run("migrate", cwd=tmp_path, DATABASE_PATH=str(tmp_path / "m.sqlite3"))
    assert code == 0, err
    assert f"sqlite database at sqlite:///{tmp_path}/m.sqlite3 is at version {latest[0]} ({latest[1]})" in out

    name = await postgres_server.create_database()
    try:
        # A password the server does not check (trust authentication), to see that it never shows.
        url = postgres_server.url_for(name).replace("postgres@", "postgres:pw-very-secret-3@")
        code, out, err = await run("migrate", cwd=tmp_path, DATABASE_URL=url)
        assert code == 0, err
        assert f"postgresql database at {url.replace('pw-very-secret-3', '***')} is at version {latest[0]}" in out
        assert "very-secret" not in out + err
        async with FakeGemini(api_key="key-1") as gemini:
            env = {"DATABASE_URL": url, "DISCORD_TOKEN": "t", "GEMINI_API_KEY": "key-1"}
            code, out, err = await run("check", cwd=tmp_path, GEMINI_BASE_URL=gemini.base_url, **env)
        assert code == 0, err
        assert "DATABASE_URL = **********" in out and "very-secret" not in out + err
    finally:
        await postgres_server.drop_database(name)


async def test_migrate_says_when_the_database_cannot_be_reached(tmp_path):
    url = "postgresql://bot:pw-very-secret-4@127.0.0.1:1/bot"
    code, out, err = await run("migrate", cwd=tmp_path, DATABASE_URL=url)
    assert code == 2 and "Cannot open the database at postgresql://bot:***@127.0.0.1:1/bot" in err
    assert "very-secret" not in out + err and "Traceback" not in err


def test_exception_text_and_tracebacks_are_redacted_too(capsys, monkeypatch):
    # Issue 12.9: the final line is redacted, not only `record.msg`; gateway keys count as secrets as well.
    import logging
    import sys
    import threading

    from bot.__main__ import setup_logging
    from bot.config import Settings

    monkeypatch.setenv("PROVIDER_RELAY_KIND", "openai-images")
    monkeypatch.setenv("PROVIDER_RELAY_BASE_URL", "https://relay.example/v1")
    monkeypatch.setenv("PROVIDER_RELAY_API_KEY", "relay-very-secret-3")
    settings = Settings(
        _env_file=None,
        discord_token="tok-very-secret-1",
        gemini_api_key="key-very-secret-2",
        providers="gemini,relay",
    )
    hooks = (sys.excepthook, threading.excepthook)
    setup_logging(settings)
    log = logging.getLogger("bot.test")
    try:
        try:
            raise RuntimeError("GET https://host/v1?key=key-very-secret-2 failed")
        except RuntimeError:
            log.exception("the call failed")
        log.error("refused", exc_info=ValueError("token tok-very-secret-1 refused"))
        log.warning("gateway said: %r", {"authorization": "Bearer relay-very-secret-3"})
    finally:
        logging.basicConfig(handlers=[], force=True)
        logging.captureWarnings(False)
        sys.excepthook, threading.excepthook = hooks
    err = capsys.readouterr().err
    assert "very-secret" not in err
    assert "Traceback" in err and "key=[redacted] failed" in err and "token [redacted] refused" in err
    assert "Bearer [redacted]" in err


async def test_check_lists_the_models_against_googles_and_warns_about_the_legacy_one(tmp_path):
    secrets = {"DISCORD_TOKEN": "tok-very-secret-1", "GEMINI_API_KEY": "key-very-secret-2"}
    models = "gemini-3-pro-image,gemini-2.5-flash-image"
    async with FakeGemini(api_key=secrets["GEMINI_API_KEY"]) as gemini:
        code, out, err = await run(
            "check", cwd=tmp_path, **secrets, GEMINI_BASE_URL=gemini.base_url, GEMINI_MODELS=models
        )
        assert code == 0, err
        assert "ok gemini-nano-banana-2.1" in out and "ok gemini-3-pro-image" in out
        assert "WARNING gemini-2.5-flash-image: legacy model" in out and "check --probe" in out
        assert "gemini-3-pro-image (Nano Banana Pro): 1K 4 cr ($0.134), 2K 4 cr ($0.134), 4K 8 cr ($0.240)" in out
        assert [r.kind for r in gemini.requests] == ["models.list"]  # listing costs nothing
        assert gemini.served == []

    async with FakeGemini(api_key=secrets["GEMINI_API_KEY"], models=("gemini-nano-banana-2.1",)) as gemini:
        code, out, err = await run(
            "check", cwd=tmp_path, **secrets, GEMINI_BASE_URL=gemini.base_url, GEMINI_MODELS="gemini-3-pro-image"
        )
    assert code == 2 and "PROBLEM gemini-3-pro-image: not listed for this key" in err
    assert "very-secret" not in out + err


async def test_check_probe_makes_one_smallest_picture_per_model_and_finds_the_404(tmp_path):
    secrets = {"DISCORD_TOKEN": "tok-very-secret-1", "GEMINI_API_KEY": "key-very-secret-2"}
    models = "gemini-3.1-flash-image,gemini-2.5-flash-image"
    async with FakeGemini(api_key=secrets["GEMINI_API_KEY"], new_project=True) as gemini:
        code, out, err = await run(
            "check", "--probe", cwd=tmp_path, **secrets, GEMINI_BASE_URL=gemini.base_url, GEMINI_MODELS=models
        )
        sent = [(r.model, r.image_size, r.status) for r in gemini.requests if r.kind == "generateContent"]
    assert code == 2
    # The smallest size each model makes: 1K for 2.1, 512 for 3.1 Flash, none to send for 2.5.
    assert sent == [
        ("gemini-nano-banana-2.1", "1K", 200),
        ("gemini-3.1-flash-image", "512", 200),
        ("gemini-2.5-flash-image", None, 404),
    ]
    assert re.search(r"ok gemini-nano-banana-2\.1 at 1K: \d+\.\d s, \$0\.03\d\d real cost \(1120 image", out)
    assert re.search(r"ok gemini-3\.1-flash-image at 512: \d+\.\d s, \$0\.04\d\d real cost \(747 image", out)
    assert "PROBLEM gemini-2.5-flash-image: 404 NOT_FOUND: this project cannot use it" in err
    assert "very-secret" not in out + err
