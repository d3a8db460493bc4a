"""Every setting of the bot, typed, with its default, in one place.

Values come from the environment and an optional `.env` in the working directory. Each field's env name is its
upper-case name. `.env.example` and the README's configuration table list the same fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ConfigError
from bot.models import ASPECT_RATIOS

if TYPE_CHECKING:
    from bot.providers.registry import ModelRegistry

# Where an operator gets each secret, for the message printed when one is missing.
SECRET_HELP = {
    "DISCORD_TOKEN": "create an application at https://discord.com/developers/applications, "
    "open Bot, press Reset Token and copy it",
    "GEMINI_API_KEY": "create one at https://aistudio.google.com/apikey (image models need a project with billing)",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    # --- secrets and endpoints ---
    # Optional at the type level so `python -m bot generate` works without Discord; `load_settings` says which
    # of them a command needs.
    discord_token: SecretStr | None = None
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    discord_guild_id: int | None = None
    database_path: Path = Path("data/bot.sqlite3")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Privileged intent; must also be switched on in the developer portal. Needed only for plain (non-reply,
    # non-mention) messages in the bot's threads to count as edit instructions.
    message_content_intent: bool = False

    # --- generation ---
    prompt_max_chars: int = Field(1500, ge=1, le=4000)
    default_aspect_ratio: str | None = None
    # Deadline for one generation including retries; Gemini takes 3-30 s, so a minute and a half is generous.
    gemini_timeout_seconds: float = Field(90.0, gt=0)
    # Per HTTP attempt; a stalled connection is abandoned and retried within the overall deadline.
    gemini_attempt_timeout_seconds: float = Field(60.0, gt=0)
    gemini_max_attempts: int = Field(3, ge=1, le=10)
    # A failed generation may still be billed, so backoff starts at a second and retries are few.
    gemini_backoff_base_seconds: float = Field(1.0, ge=0)
    gemini_backoff_max_seconds: float = Field(20.0, ge=0)
    # A 429 asking for a longer wait than this is not retried; the user is told to try later.
    gemini_max_retry_wait_seconds: float = Field(30.0, ge=0)

    # --- models and credits ---
    # The model used when nobody chose one; one credit is its cheapest standard image (bot.providers.registry).
    gemini_model: str = "gemini-nano-banana-2.1"
    # Comma-separated ids members may choose besides the default (empty: the default only).
    gemini_models: str = ""
    # Size when nobody chose one; a model without it makes its nearest smaller size.
    default_image_size: Literal["512", "1K", "2K", "4K"] = "1K"
    # Operator prices: `model:SIZE[:tier]=dollars per image` or `model:input|text=dollars per million tokens`.
    model_prices: str = ""
    # Dollars one credit is worth; unset: the default model's cheapest standard image.
    credit_usd: float | None = Field(None, gt=0)
    # Earlier answers of a Gemini 3 model sent back with an edit (its own memory), and the byte budget they
    # may take of the 20 MB request; 0 turns sends the picture as a fresh image instead.
    edit_history_turns: int = Field(3, ge=0, le=10)
    edit_history_max_bytes: int = Field(10 * 1024 * 1024, ge=0, le=18 * 1024 * 1024)

    # --- relax lane ---
    # Half price, for work that can wait: Google's Flex tier, else a Batch job (README: "The relax lane").
    # Relax credits per member per day, apart from DAILY_QUOTA; 0 switches relax off, -1 means unlimited.
    relax_daily_quota: int = Field(10, ge=-1)
    # The relax lane's own share of Google's limits, besides UPSTREAM_RPM / UPSTREAM_CONCURRENCY (keep the sums within
    # your project's limits): starts per window (Flex attempts and Batch submissions) and Flex calls in flight.
    relax_rpm: int = Field(2, ge=1)
    relax_concurrency: int = Field(2, ge=1)
    # Relax requests one member may have waiting at once (they can wait for hours).
    relax_user_max_pending: int = Field(5, ge=1)
    # Flex answers within 1-15 minutes or sheds with 503: tries before falling back to Batch (0: Batch at once),
    # the deadline of one Flex call, and the pause between two tries.
    relax_flex_attempts: int = Field(3, ge=0, le=20)
    relax_flex_timeout_seconds: float = Field(900.0, gt=0)
    relax_flex_backoff_seconds: float = Field(30.0, ge=0)
    # How often a Batch job is asked about, and how long it may take before it is cancelled and refunded (Google
    # expires a job still waiting after 48 h; its target is 24 h).
    relax_batch_poll_seconds: float = Field(60.0, gt=0)
    relax_batch_max_hours: float = Field(48.0, gt=0)

    # --- providers (each name's PROVIDER_<NAME>_* variables are read by bot/providers/config.py) ---
    # Provider names in priority order; `gemini` is Google's own endpoint (GEMINI_API_KEY, GEMINI_BASE_URL). A
    # request moves to the next one on a connection error, a timeout, a 5xx or a 429, never on a refusal.
    providers: str = "gemini"
    # A picture a gateway hands back as a url is downloaded: at most this many bytes, within this many seconds.
    provider_download_max_bytes: int = Field(30 * 1024 * 1024, ge=1)
    provider_download_timeout_seconds: float = Field(20.0, gt=0)

    # --- quotas and budgets ---
    # Credits per member per server per day; -1 means unlimited.
    daily_quota: int = Field(10, ge=-1)
    quota_timezone: str = "UTC"
    # Credits one member may use per day across every server and DMs together; -1 means no cap.
    user_global_daily_credits: int = Field(40, ge=-1)
    # Calls to the image model one member may cause per day, whatever they returned (text-only answers, refusals
    # and retries count); -1 means no cap.
    user_daily_upstream_attempts: int = Field(60, ge=-1)
    # The most a server admin may set as a daily limit (member, role or server default), and grant one member
    # in a day, in credits; -1 lets admins set unlimited.
    max_admin_limit: int = Field(200, ge=-1)
    max_admin_grant: int = Field(100, ge=0)
    # Images (calls that may be billed, delivered or not) per server per day and for the whole bot; -1: no cap.
    server_daily_image_cap: int = Field(200, ge=-1)
    global_daily_image_cap: int = Field(500, ge=-1)
    # The same caps in US dollars (estimates while running, real cost once answered); -1 means no cap.
    server_daily_cost_cap_usd: float = Field(5.0, ge=-1)
    global_daily_cost_cap_usd: float = Field(20.0, ge=-1)

    # --- upstream scheduler ---
    upstream_rpm: int = Field(10, ge=1)
    # The provider's rate window. Only tests and benchmarks change it (everything time-based scales with it).
    upstream_window_seconds: float = Field(60.0, gt=0)
    # Extra time a start counts in the window (per 60 s; scaled with the window): our start and Google's count of it
    # are a network hop apart, and that hop varies. 0.5 s of 60 costs under 1 % of the allowance.
    upstream_window_margin_seconds: float = Field(0.5, ge=0)
    # Tokens charged against UPSTREAM_TPM when a request starts, corrected by the real usage afterwards
    # (2.5 Flash Image bills 1290 output tokens per image; the rest is a typical prompt).
    upstream_tokens_per_request: int = Field(1400, ge=1)
    upstream_concurrency: int = Field(4, ge=1)
    # Optional budgets; 0 means not enforced by the bot.
    upstream_tpm: int = Field(0, ge=0)
    upstream_rpd: int = Field(0, ge=0)
    # Queued plus running requests one user may have at once.
    user_max_pending: int = Field(3, ge=1)
    # How long the whole gate pauses after a 429 that says nothing about when to retry (per 60 s window).
    upstream_429_pause_seconds: float = Field(10.0, ge=0)
    # Consecutive upstream failures that open the circuit, and how long it stays open.
    circuit_failure_threshold: int = Field(5, ge=1)
    circuit_cooldown_seconds: float = Field(60.0, gt=0)
    # Least time between two edits of one progress message (Discord rate-limits message edits).
    progress_edit_interval_seconds: float = Field(2.0, ge=0)
    # How long running requests may finish after SIGTERM before the rest are refunded.
    shutdown_grace_seconds: float = Field(30.0, ge=0)

    # --- moderation ---
    moderation_enabled: bool = True
    # Blocks within the window that put a user on cool-down, and for how long.
    moderation_cooldown_blocks: int = Field(3, ge=1)
    moderation_cooldown_window_seconds: float = Field(600.0, gt=0)
    moderation_cooldown_seconds: float = Field(900.0, gt=0)
    moderation_log_retention_days: int = Field(90, ge=1)
    # Blocked plus allowed terms one server may add.
    moderation_max_server_terms: int = Field(500, ge=1)
    # The AI second opinion (bot.moderation.ai): a Gemini text model id (a Flash-Lite one is cheap); empty = off.
    moderation_ai_model: str = ""
    # When that model cannot answer: "allow" (the local tier already passed the prompt) or "block".
    moderation_ai_on_error: Literal["allow", "block"] = "allow"
    # It runs before every generation the local tier allows, so it must be quick or give up.
    moderation_ai_timeout_seconds: float = Field(5.0, gt=0, le=60)
    # Also send the input images of an edit (more tokens, and images leave for a second model).
    moderation_ai_images: bool = False
    # A harmful answer blocks only from this confidence on.
    moderation_ai_min_confidence: float = Field(0.5, ge=0, le=1)
    # Verdicts kept by normalised prompt (a repeated prompt costs nothing).
    moderation_ai_cache_size: int = Field(10_000, ge=0)
    # US dollars per million tokens, to count its cost like a generation's (Flash-Lite list prices).
    moderation_ai_input_usd_per_mtok: float = Field(0.10, ge=0)
    moderation_ai_output_usd_per_mtok: float = Field(0.40, ge=0)
    # Appeals of the AI tier's blocks are re-checked by this model (empty: they go to the server's moderators).
    moderation_appeal_model: str = ""
    moderation_appeals_per_day: int = Field(3, ge=0)

    # --- editing and inputs ---
    max_input_image_bytes: int = Field(10 * 1024 * 1024, ge=1)
    max_input_images: int = Field(3, ge=1, le=14)
    max_input_pixels: int = Field(50_000_000, ge=1)
    conversation_max_depth: int = Field(8, ge=1)
    # Keep input images in the database (needed only to edit images whose Discord message is gone).
    keep_input_images: bool = False

    # --- hardening ---
    # Requests waiting or running for the whole bot; more are refused at once (at UPSTREAM_RPM=10, 300 is
    # half an hour of waiting).
    queue_max_length: int = Field(300, ge=1)
    # Least time between two reports of everyone's place in line (per 60 s window; scaled with it), and most
    # waiting requests told of a new place per report (those nearest the front first).
    queue_report_interval_seconds: float = Field(2.0, ge=0)
    queue_updates_per_report: int = Field(50, ge=1)
    # GIF and BMP must be decoded whole to be converted (PNG, JPEG and WebP go upstream undecoded): a lower pixel
    # limit for them, and the longest side they are converted at.
    max_converted_input_pixels: int = Field(16_777_216, ge=1)
    converted_input_max_side: int = Field(2048, ge=16)
    # Threads that decode, convert and re-encode images: at most this many images are in memory at once.
    image_workers: int = Field(2, ge=1, le=16)
    # Input images refused (damaged, too big, not an image) per member within the window, after which their
    # requests with images are refused before anything is downloaded until the oldest refusal ages out.
    input_refusal_limit: int = Field(5, ge=1)
    input_refusal_window_seconds: float = Field(600.0, gt=0)
    # What Discord allows per channel, for message creates and separately for edits (commonly observed: 5 per
    # 5 s). Progress (waiting replies, place-in-line edits) may use half of it; results always go first.
    discord_channel_writes: int = Field(5, ge=1)
    discord_channel_window_seconds: float = Field(5.0, gt=0)

    # --- scale-out ---
    # Unset: the SQLite file at DATABASE_PATH (sqlite:///<DATABASE_PATH>). postgresql://user:password@host/db puts
    # every process's ledger, moderation rules and results in one PostgreSQL database.
    database_url: SecretStr | None = None
    # Most PostgreSQL connections one process opens.
    database_pool_size: int = Field(10, ge=1, le=100)
    # Unset: each process gates its own upstream calls. redis://host:6379/0 makes every process share one gate:
    # UPSTREAM_RPM, _CONCURRENCY, _TPM, _RPD and the 429 pause then hold for the whole bot.
    redis_url: SecretStr | None = None
    # A process holds its reservations under a lease it renews every third of this; when it dies, its members'
    # credits stay held until the lease runs out, then any live process refunds them.
    process_lease_seconds: float = Field(60.0, gt=0)
    # This process's name across restarts (a restart under the same name reclaims its earlier run's reservations
    # at once). Unset: the host name plus the shard ids this process runs.
    instance_id: str | None = None
    # Gateway shards of the whole bot (unset: Discord's recommendation), and which of them this process runs
    # ("0,1" or "0-3"; unset: all). Each process of a split bot runs its own subset; the one with shard 0 gets the
    # direct messages and publishes the commands to DISCORD_GUILD_ID.
    shard_count: int | None = Field(None, ge=1)
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = None

    @field_validator("quota_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from exc
        return value

    @field_validator("default_aspect_ratio")
    @classmethod
    def _known_ratio(cls, value: str | None) -> str | None:
        if value and value not in ASPECT_RATIOS:
            raise ValueError(f"must be one of {', '.join(ASPECT_RATIOS)}")
        return value or None

    @field_validator("gemini_model", "gemini_models")
    @classmethod
    def _not_retired(cls, value: str) -> str:
        from bot.providers.registry import RETIRED, normalise_id  # bot.providers imports this module

        ids = [normalise_id(v) for v in value.split(",") if v.strip()]
        for model_id in ids:
            if model_id in RETIRED:
                raise ValueError(
                    f"{model_id} was shut down by Google (it answers 404 NOT_FOUND); use {RETIRED[model_id]}"
                )
        return ",".join(ids)

    @field_validator("gemini_model")
    @classmethod
    def _one_model(cls, value: str) -> str:
        if not value or "," in value:
            raise ValueError("must be one model id (the others go in GEMINI_MODELS)")
        return value

    @field_validator("model_prices")
    @classmethod
    def _prices(cls, value: str) -> str:
        from bot.providers.registry import ModelRegistry

        ModelRegistry.build(prices=value)  # raises ValueError naming the bad entry
        return value

    def registry(self) -> ModelRegistry:
        """The models and prices these settings describe (`bot.providers.registry`)."""
        from bot.providers.registry import ModelRegistry  # bot.providers imports this module

        return ModelRegistry.build(
            self.gemini_model,
            self.gemini_models.split(","),
            prices=self.model_prices,
            credit_usd=self.credit_usd,
        )

    @field_validator("credit_usd", "metrics_port", "usage_alert_channel", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("gemini_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_list(cls, value: object) -> object:
        """ "0,2" and "0-3" (a range, both ends included) as a tuple of ids."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        ids: list[int] = []
        for part in value.replace(" ", "").split(","):
            first, dash, last = part.partition("-")
            if not first.isdigit() or (dash and not last.isdigit()):
                raise ValueError(f"{part!r} is not a shard id or a range like 0-3")
            ids.extend(range(int(first), int(last or first) + 1))
        return tuple(sorted(set(ids)))

    @model_validator(mode="after")
    def _shards_fit(self) -> Settings:
        if self.shard_ids is not None:
            if self.shard_count is None:
                raise ValueError("SHARD_IDS needs SHARD_COUNT (the number of shards of the whole bot)")
            if not self.shard_ids or max(self.shard_ids) >= self.shard_count:
                raise ValueError(f"SHARD_IDS must be between 0 and SHARD_COUNT - 1 ({self.shard_count - 1})")
        return self

    @property
    def holds_shard_zero(self) -> bool:
        """Whether this process runs shard 0: it publishes the commands and receives direct messages."""
        return self.shard_ids is None or 0 in self.shard_ids

    @field_validator("instance_id")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("discord_token", "gemini_api_key")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value

    @property
    def provider_names(self) -> tuple[str, ...]:
        """PROVIDERS as names (validated, with the PROVIDER_<NAME>_* variables, by `load_settings`)."""
        return tuple(name for part in self.providers.split(",") if (name := part.strip().lower()))

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.quota_timezone)

    def url_passwords(self) -> list[str]:
        """The passwords inside the service URLs, for the log filter."""
        urls = [self.database_url, self.redis_url]
        return [p for url in urls if url is not None and (p := urlsplit(url.get_secret_value()).password)]

    @property
    def database(self) -> str:
        """Where the database is: DATABASE_URL, else DATABASE_PATH as a sqlite:/// URL (password included: never
        log it; `bot.storage.db.redact_url` hides it)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.database_path}"

    # --- operations ---
    # Port of the /metrics, /healthz and /readyz endpoint; unset or empty: no endpoint.
    metrics_port: int | None = Field(None, ge=1, le=65535)
    # Loopback by default: the endpoint has no authentication. Docker sets 0.0.0.0 and publishes the port.
    metrics_host: str = "127.0.0.1"
    # json: one JSON object per line (ts, level, logger, message, request_id, exc) for log collectors.
    log_format: Literal["text", "json"] = "text"
    # Prompts (and stored input images) older than this are redacted; 0 keeps them.
    prompt_retention_days: int = Field(90, ge=0)
    # Channel id that hears when the whole bot's daily cap reaches 80 % and 100 %; unset: no alert.
    usage_alert_channel: int | None = None
    # Whether members may ask for images in direct messages with the bot (their limits apply there too).
    allow_dms: bool = True


# Every default, once: constructors that have defaults read them from here (no environment is read).
DEFAULTS = Settings.model_construct()


class _Secrets(BaseSettings):
    """Read with the same sources as Settings, so the secrets can be reported even when another field is bad."""

    model_config = Settings.model_config
    discord_token: SecretStr | None = None
    gemini_api_key: SecretStr | None = None


def load_settings(require: tuple[str, ...] = ("DISCORD_TOKEN", "GEMINI_API_KEY"), **overrides: object) -> Settings:
    """Build the settings or raise one `ConfigError` that names every bad or missing variable and how to fix it.
    `require` lists the secrets the command at hand needs."""
    settings: Settings | None = None
    problems: list[str] = []
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # err["input"] is deliberately never shown: it may be a secret.
        problems = [
            f"  - {str(err['loc'][0]).upper()}: {err['msg']}." if err["loc"] else f"  - {err['msg']}."
            for err in exc.errors()
        ]
    given = {k: v for k, v in overrides.items() if k in _Secrets.model_fields}
    secrets = settings or _Secrets(**given)  # type: ignore[arg-type]
    if settings is not None:
        # Imported here: the providers' configuration reads `Settings` from this module.
        from bot.providers.config import GOOGLE, read_providers

        problems += read_providers(settings)[1]
        if GOOGLE not in settings.provider_names:  # no provider uses Google's own endpoint: no key needed
            require = tuple(name for name in require if name != "GEMINI_API_KEY")
    missing = [
        f"  - {name} is not set. Set it in the environment or in a .env file in the working directory; "
        f"to get one, {SECRET_HELP[name]}."
        for name in require
        if getattr(secrets, name.lower(), None) is None
    ]
    problems = missing + problems
    if problems or settings is None:
        raise ConfigError(
            "\n".join(["The bot's configuration is incomplete or invalid:", *problems, "See .env.example."])
        )
    return settings
