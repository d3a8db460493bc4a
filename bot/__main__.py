"""Command line: `python -m bot` runs the bot; `check`, `generate`, `sync` and `migrate` help the operator.

python -m bot                       run the bot
python -m bot check [--probe]       validate the configuration, list the models against Google's; --probe makes
                                    one smallest real picture per model and reports its cost and time
python -m bot generate "a red fox" --aspect-ratio 16:9 [--model ID] [--size 2K] -o fox.png
                                    one image through the same pipeline, without Discord (tests the key)
python -m bot sync [--global | --guild ID]
                                    publish the slash commands (globally takes up to an hour to show)
python -m bot report [--days 30] [--guild ID] [--out DIR]
                                    usage and cost in the terminal, plus a chart (PNG) and the rows (CSV)
python -m bot migrate               bring the database's schema up to date, then exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from bot.config import Settings, load_settings
from bot.errors import BotError, ConfigError
from bot.models import ASPECT_RATIOS, IMAGE_SIZES, ImageOptions, ImageRequest, RequestKind
from bot.ops import report
from bot.ops.logs import configure_logging
from bot.providers.config import load_providers
from bot.storage.db import dialect_of, redact_url, sqlite_path

log = logging.getLogger("bot")


def extra_secrets(settings: Settings) -> list[str]:
    """Secrets that are not fields of `Settings` themselves: every gateway's key (PROVIDER_<NAME>_API_KEY) and the
    passwords inside DATABASE_URL and REDIS_URL (a driver may print them on their own)."""
    found = settings.url_passwords()
    try:
        found += [p.api_key.get_secret_value() for p in load_providers(settings) if p.api_key is not None]
    except ConfigError:  # a bad provider setting is reported by `load_settings`; the rest are still redacted
        pass
    return found


def setup_logging(settings: Settings) -> None:
    """Every log line of the process through one redacting handler (text or JSON, `LOG_FORMAT`): the token, the
    keys, every gateway's key and the service URLs' passwords never reach the output, in a message, an
    exception's text or a traceback."""
    configure_logging(settings, extra_secrets=extra_secrets(settings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="gemini-image-bot")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    chk = sub.add_parser("check", help="validate the configuration and the models")
    chk.add_argument("--quiet", action="store_true", help="print only problems, ask Google nothing (HEALTHCHECK)")
    chk.add_argument("--probe", action="store_true", help="make one smallest real picture per model (costs money)")
    gen = sub.add_parser("generate", help="make one image without Discord, to test the Gemini key")
    gen.add_argument("prompt")
    gen.add_argument("--aspect-ratio", choices=ASPECT_RATIOS)
    gen.add_argument("--model", help="a model id or name (default: GEMINI_MODEL)")
    gen.add_argument("--size", choices=IMAGE_SIZES)
    gen.add_argument("-o", "--output", type=Path, default=Path("out.png"))
    sync = sub.add_parser("sync", help="publish the slash commands to Discord")
    scope = sync.add_mutually_exclusive_group()
    scope.add_argument("--global", dest="everywhere", action="store_true", help="in every server (default)")
    scope.add_argument("--guild", type=int, help="in one server, at once")
    report.add_parser(sub)
    sub.add_parser("migrate", help="apply the database migrations (the bot also does at start) and exit")
    args = parser.parse_args(argv)
    command = args.command or "run"

    # `report` reads the database only; `migrate` writes nothing but the schema.
    needs = {"generate": ("GEMINI_API_KEY",), "migrate": (), "report": ()}.get(
        command, ("DISCORD_TOKEN", "GEMINI_API_KEY")
    )
    try:
        settings = load_settings(require=needs)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    setup_logging(settings)
    if command == "report":
        return asyncio.run(report.report(settings, days=args.days, guild_id=args.guild, out_dir=args.out))
    if command == "check":
        return asyncio.run(check(settings, quiet=args.quiet, probe=args.probe))
    if command == "generate":
        options = ImageOptions(aspect_ratio=args.aspect_ratio, model=args.model, size=args.size)
        return asyncio.run(generate(settings, args.prompt, options, args.output))
    if command == "sync":
        return asyncio.run(sync_commands(settings, args.guild))
    if command == "migrate":
        return asyncio.run(migrate(settings))
    return run(settings)


async def check(settings: Settings, *, quiet: bool = False, probe: bool = False) -> int:
    """The configuration, the database path, and (unless `quiet`) the models against Google's list; `probe`
    makes one real picture per model. Exit 2 names each problem."""
    if not quiet:
        print("Configuration is valid:")
        for name, value in settings.model_dump().items():
            print(f"  {name.upper()} = {value}")  # SecretStr dumps as '**********'
        from bot.providers.config import load_providers

        print("Providers, in the order they are tried:")
        for config in load_providers(settings):
            limits = ", ".join(
                f"{what} {value}" for what, value in (("rpm", config.rpm), ("concurrency", config.concurrency)) if value
            )
            mapped = f"; {settings.gemini_model} is {config.remote_model(settings.gemini_model)} there"
            print(f"  {config.name}: {config.kind} at {config.base_url}{mapped}" + (f" ({limits})" if limits else ""))
        print("Relax lane: " + relax_summary(settings, [c.name for c in load_providers(settings)]))
    if dialect_of(settings.database) == "sqlite":  # a server is reached by `python -m bot migrate`
        if (problem := _sqlite_folder_problem(settings)) is not None:
            print(problem, file=sys.stderr)
            return 2
    if quiet:  # the container's health check asks Google nothing
        return 0
    from bot.checks import check_models

    return await check_models(settings, probe=probe)


def relax_summary(settings: Settings, providers: list[str]) -> str:
    """Whether members can ask for relax mode, and why not (Flex and Batch are Google's own)."""
    if "gemini" not in providers:
        return "unavailable: Flex and Batch need the gemini provider in PROVIDERS (gateways have no relax lane)"
    if settings.relax_daily_quota == 0:
        return "off (RELAX_DAILY_QUOTA=0)"
    allowance = "unlimited" if settings.relax_daily_quota < 0 else f"{settings.relax_daily_quota} credits a day"
    return (
        f"Flex ({settings.relax_flex_attempts} tries), then Batch, through gemini; {allowance} per member; "
        f"{settings.relax_rpm} starts per minute, {settings.relax_concurrency} at once"
    )


def _sqlite_folder_problem(settings: Settings) -> str | None:
    path = Path(sqlite_path(settings.database))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        name = "DATABASE_URL" if settings.database_url is not None else "DATABASE_PATH"
        return f"{name}: cannot create {path.parent}: {exc}"
    return None


async def migrate(settings: Settings) -> int:
    from bot.storage.db import Database, migrations

    where = redact_url(settings.database)
    try:
        db = await Database.open(settings.database, pool_size=1)
    except (OSError, ValueError) as exc:
        print(f"Cannot open the database at {where}: {exc}", file=sys.stderr)
        return 2
    try:
        version = await db.version()
    finally:
        await db.close()
    latest = migrations(db.dialect)[-1][1]
    print(f"The {db.dialect} database at {where} is at version {version} ({latest}).")
    return 0


async def generate(settings: Settings, prompt: str, options: ImageOptions, output: Path) -> int:
    from bot.pipeline import Delivery
    from bot.services import Services
    from cogs.ui.wording import user_message

    services = await Services.start(settings, recover=False)  # a running bot may share the database

    async def save(delivery: Delivery) -> int:
        path = output if output.suffix else output.with_suffix("." + delivery.image.extension)
        path.write_bytes(delivery.image.data)
        print(f"Saved {len(delivery.image.data)} bytes ({delivery.image.mime_type}) to {path}")
        return 0

    request = ImageRequest(user_id=0, channel_id=0, prompt=prompt, kind=RequestKind.CLI, options=options)
    try:
        delivery = await services.pipeline.run(request, save)
    except BotError as exc:
        print(user_message(exc).text, file=sys.stderr)
        return 1
    finally:
        await services.stop_accepting()
        await services.close()
    usage = delivery.image.usage
    if delivery.image.text:
        print(f"The model says: {delivery.image.text}")
    size = delivery.request.options.size
    cost = delivery.image.cost_usd
    print(
        f"Model {delivery.image.model} ({delivery.model_name}, {size}); tokens: {usage.prompt_tokens} in, "
        f"{usage.output_tokens} out; {delivery.reservation.credits} credit(s)"
        + (f", real cost ${cost:.4f}" if cost is not None else "")
    )
    return 0


async def sync_commands(settings: Settings, guild_id: int | None) -> int:
    import discord

    from bot.app import ImageBot

    bot = ImageBot(settings, serving=False)
    async with bot:
        await bot.login(settings.discord_token.get_secret_value())  # type: ignore[union-attr]
        if guild_id:
            guild = discord.Object(id=guild_id)
            bot.tree.copy_global_to(guild=guild)
            synced = await bot.tree.sync(guild=guild)
        else:
            synced = await bot.tree.sync()
        print(f"Published {len(synced)} commands " + (f"to server {guild_id}." if guild_id else "globally."))
    return 0


def run(settings: Settings) -> int:
    import discord

    try:
        asyncio.run(serve(settings))
    except discord.LoginFailure:
        print(
            "Discord refused DISCORD_TOKEN: reset the token in the developer portal and set it again.",
            file=sys.stderr,
        )
        return 2
    except discord.PrivilegedIntentsRequired:
        print(
            "MESSAGE_CONTENT_INTENT=true needs the Message Content intent switched on in the developer portal "
            "(Bot -> Privileged Gateway Intents), or set it to false.",
            file=sys.stderr,
        )
        return 2
    return 0


async def serve(settings: Settings) -> None:
    """Run until Discord closes us or SIGINT/SIGTERM arrives; then close gracefully (waiting users are told and
    refunded, running requests get SHUTDOWN_GRACE_SECONDS)."""
    from bot.app import ImageBot

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with ImageBot(settings) as bot, contextlib.AsyncExitStack() as stack:
        if settings.metrics_port is not None:  # /metrics, /healthz, /readyz for monitoring and HEALTHCHECK
            await stack.enter_async_context(bot.health_server())
        runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))  # type: ignore[union-attr]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("stopping on signal")
            await bot.close()
        stopper.cancel()
        await runner


if __name__ == "__main__":
    sys.exit(main())
