"""One exception hierarchy for the whole bot: a leaf that imports nothing of the bot.

Every failure a user can meet is a subclass of `BotError`, with typed attributes (plain values such as a reset
time). Providers map their wire errors into the `UpstreamError` branch; the pipeline and cogs never look at HTTP
statuses. What the user reads is made on the Discord side (`cogs.ui.wording.user_message`); `str(exc)` is the
detail for the log (never a secret).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


class BotError(Exception):
    """Base of every expected failure. Whatever the subclass, a reservation taken for the request is refunded."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)


# --- before anything is spent -------------------------------------------------------------------------------


class ConfigError(BotError):
    """A setting is missing or invalid; raised at start, never seen by users."""


class InvalidRequest(BotError):
    """The user's input is unusable (prompt too long, wrong file type, ...). The message says exactly why."""


class ImageRefused(InvalidRequest):
    """An input image judged unusable by its bytes (damaged, too large, not an image). Counted per member, since
    judging it cost a download and maybe a decode (`TooManyRefusedImages`)."""


class TooManyRefusedImages(BotError):
    """A member sent `limit` refused images within the window: their requests with images are refused before
    anything is downloaded until `until_ts`."""

    def __init__(self, limit: int, until_ts: float) -> None:
        super().__init__(f"{limit} refused input images in a short time")
        self.limit = limit
        self.until_ts = until_ts


class ModerationBlocked(BotError):
    """This server's rules refused the text before anything reached Google."""

    def __init__(
        self,
        category: str,
        term: str | None = None,
        *,
        reason: str = "",
        in_history: bool = False,
        in_dm: bool = False,
        cooldown_until: float | None = None,
        tier: Literal["local", "ai"] = "local",
        appeal_id: int | None = None,
    ) -> None:
        super().__init__(reason or f"blocked by rule {category}")
        self.category = category
        self.term = term
        self.in_history = in_history  # only an earlier instruction of the conversation matched
        self.in_dm = in_dm  # outside a server: the bot's own rules, not a server's
        self.cooldown_until = cooldown_until  # this block started a cool-down that ends then
        self.tier = tier  # the word lists and rules ("local"), or the AI second opinion ("ai")
        self.appeal_id = appeal_id  # an AI block the member may appeal (the recorded block's id)
        self.reason = reason  # why, in a sentence (the AI tier's reason is worth showing)


class CoolingDown(BotError):
    """The user was put on a moderation cool-down after repeated blocks; it applies wherever they ask."""

    def __init__(self, until_ts: float, *, elsewhere: bool = False) -> None:
        super().__init__("moderation cool-down")
        self.until_ts = until_ts
        self.elsewhere = elsewhere  # it started in another server or in DMs, where alone it can be lifted


class QuotaExceeded(BotError):
    """The member has fewer credits left than the request costs: in this server (`scope` "server", DMs count
    on their own) or across every server and DMs together ("everywhere", USER_GLOBAL_DAILY_CREDITS); or, for a
    relax request (`lane` "relax"), in their relax allowance. `relax_left` is what the relax allowance still holds
    (None: unlimited) and `relax_credits` what the same request would cost there (set by the pipeline), so a door
    can offer relax mode to a member who is out of credits."""

    def __init__(
        self,
        limit: int,
        resets_at_ts: float,
        *,
        needed: int = 1,
        left: int = 0,
        scope: Literal["server", "everywhere"] = "server",
        lane: Literal["fast", "relax"] = "fast",
        relax_left: int | None = 0,
    ) -> None:
        super().__init__(f"daily {lane} quota of {limit} credits ({scope}) cannot pay {needed}; {left} left")
        self.limit = limit
        self.resets_at_ts = resets_at_ts
        self.needed = needed
        self.left = left
        self.scope = scope
        self.lane = lane
        self.relax_left = relax_left
        self.relax_credits: int | None = None


class RelaxUnavailable(BotError):
    """Relax mode cannot take this request: the operator has no Gemini provider ("gateways-only": gateways have no
    Flex or Batch), switched relax off ("off", RELAX_DAILY_QUOTA=0), or it is an edit ("edits": relax makes new
    pictures only, since a job may have to be sent again after a restart)."""

    def __init__(self, reason: Literal["gateways-only", "off", "edits"]) -> None:
        super().__init__(f"relax mode unavailable: {reason}")
        self.reason = reason


class Suspended(BotError):
    """The bot stopped while a relax request waited (in line, at Flex or in a Batch job). Not an ending: its
    reservation and its job stay as they are, and the next start resumes it. Nothing is refunded; the member is
    told it carries on."""


class AttemptsExhausted(BotError):
    """The member caused USER_DAILY_UPSTREAM_ATTEMPTS calls to the image model today (answers without a picture
    and retries count), so no more are made for them until the reset."""

    def __init__(self, limit: int, resets_at_ts: float) -> None:
        super().__init__(f"{limit} upstream attempts used today")
        self.limit = limit
        self.resets_at_ts = resets_at_ts


class ChoiceRefused(InvalidRequest):
    """A model, size or aspect ratio (or number of input images) the chosen model lacks, or a model or size
    this member may not use here. Refused before anything is charged or sent; `possible` is what they can pick."""

    def __init__(
        self,
        what: Literal["model", "size", "aspect ratio", "input images"],
        chosen: str,
        *,
        model: str,
        possible: tuple[str, ...],
        not_allowed: bool = False,
    ) -> None:
        super().__init__(f"{what} {chosen} refused for {model}; possible: {', '.join(possible) or 'none'}")
        self.what = what
        self.chosen = chosen
        self.model = model  # the model's friendly name
        self.possible = possible
        self.not_allowed = not_allowed  # the model has it, but this server does not let this member use it


class BudgetExhausted(BotError):
    """A spending cap (per server or global) is reached: the server's budget, not the user's quota."""

    def __init__(self, scope: Literal["server", "global", "upstream"], resets_at_ts: float) -> None:
        super().__init__(f"{scope} daily budget reached")
        self.scope = scope
        self.resets_at_ts = resets_at_ts


class QueueFull(BotError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"already {limit} requests queued or running")
        self.limit = limit


class BotBusy(BotError):
    """The whole bot's line is full (`QUEUE_MAX_LENGTH`): nothing was reserved, the user may try again later."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the bot's line is full ({limit} requests)")
        self.limit = limit


class NotAllowed(BotError):
    """A member pressed a button of someone else's request (`action`: "cancel", "delete")."""

    def __init__(self, action: Literal["cancel", "delete"]) -> None:
        super().__init__(f"not allowed to {action}")
        self.action = action


class NotHere(BotError):
    """The bot may not be used here or by this member: direct messages are off (`rule` "dms"), the server closed
    this channel or its category ("channel") or threads ("thread"), or only some roles may generate ("role").
    `quiet`: a message door says nothing (the server chose to ignore such messages); interactions always answer."""

    def __init__(
        self,
        rule: Literal["dms", "channel", "thread", "role"],
        *,
        quiet: bool = False,
        allowed: tuple[int, ...] = (),
        roles: tuple[int, ...] = (),
    ) -> None:
        super().__init__(f"not allowed here: {rule}")
        self.rule = rule
        self.quiet = quiet
        self.allowed = allowed  # the channels or categories the server opened, when that is the rule
        self.roles = roles  # the roles that may generate, when that is the rule


class Cancelled(BotError):
    """The requester (or a moderator) cancelled a waiting request."""


class ShuttingDown(BotError):
    """The bot is stopping; the request was not started and is refunded."""


# --- upstream (provider) failures ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Charge:
    """An attempt that failed after the provider may have billed it (a timeout after the request was sent, an
    answer whose picture could not be used): spending caps count it although nobody got a picture from it."""

    provider: str
    model: str  # the provider's id of the model
    cost_usd: float | None  # the provider's configured price; None: unknown (count the bot's estimate)
    why: str  # the error's class name


class UpstreamError(BotError):
    """Something went wrong at or on the way to the image provider. Which ones are retried is decided in
    `bot.providers.retry`, in one place; which ones move a request to the next provider in
    `bot.providers.failover`.

    A failed attempt may still have been billed (an answer without a picture, a timeout after the request was
    sent, a 5xx): the provider says so in `billed`, and in `cost_usd` when the answer said what it cost."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        # Whether the provider may have billed this attempt: True, False, or None when nobody could tell (then a
        # timeout counts, see `bot.providers.billing.may_be_billed`). Set by the provider that raised it.
        self.billed: bool | None = None
        # What the attempt cost when its answer said (Gemini's usageMetadata on an answer without a picture).
        self.cost_usd: float | None = None
        # Attempts of the same request that may have been billed, this one included (set by the provider chain).
        self.charges: tuple[Charge, ...] = ()
        # Which configured provider raised it (PROVIDERS) and the name users read for it ("Google", a gateway's
        # PROVIDER_N_DISPLAY_NAME); None when it is no one provider's (every provider failed, a bot-wide gate).
        self.provider: str | None = None
        self.provider_label: str | None = None

    def blame(self, provider: str, label: str) -> None:
        """Say which provider raised this, unless that is known already (the innermost knows best)."""
        if self.provider is None:
            self.provider, self.provider_label = provider, label

    def unblame(self) -> None:
        """No single provider is to blame (several failed): users get neutral words."""
        self.provider = self.provider_label = None


class PromptBlocked(UpstreamError):
    """Google refused the prompt (`promptFeedback.blockReason`, or no candidates at all)."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(f"prompt blocked: {reason}")
        self.reason = reason
        self.message = message
        # Set by moderation when it records the block, if that started a cool-down.
        self.cooldown_until: float | None = None


class ImageBlocked(UpstreamError):
    """Google generated nothing it would show: the candidate finished with a safety-type reason."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(f"image blocked: {reason}")
        self.reason = reason
        self.message = message
        # Set by moderation when it records the block, if that started a cool-down.
        self.cooldown_until: float | None = None


class TextOnlyAnswer(UpstreamError):
    """The model answered in words only (often a clarifying question or a refusal in prose)."""

    def __init__(self, text: str) -> None:
        super().__init__("the model answered without an image")
        self.text = text


class GenerationFailed(UpstreamError):
    """The model stopped without an image for a non-safety reason (NO_IMAGE, MAX_TOKENS, unknown values)."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(f"generation failed: {reason}")
        self.reason = reason
        self.message = message


class UpstreamUnavailable(UpstreamError):
    """500/503/504, a connection error, or a malformed answer: Google's side, worth a retry."""


class RateLimited(UpstreamError):
    """429 with a short wait; `retry_after` seconds come from `RetryInfo` (None when it gave none)."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OperatorError(UpstreamError):
    """The bot's own setup is wrong: bad key, no quota for the model (per-day or `limit: 0`), billing, retired
    model id. Users are told it is the operator's problem; the operator gets the detail in the log."""

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ModelUnavailable(OperatorError):
    """404 NOT_FOUND: the model id is retired, misspelt, or not served to this project (2.5 Flash Image for new
    projects). The operator has to pick another model; retrying cannot help."""

    def __init__(self, message: str, *, model: str) -> None:
        super().__init__(message, status=404, reason="NOT_FOUND")
        self.model = model


class UpstreamTimeout(UpstreamError):
    """No answer within the deadline."""


class BatchEnded(UpstreamError):
    """A relax request's Batch job ended without a picture: Google's job "FAILED", "EXPIRED" (still waiting after
    48 h), "CANCELLED" by someone else, "LOST" (Google no longer knows the job), or "TIMEOUT" (it took longer than
    RELAX_BATCH_MAX_HOURS and the bot cancelled it). Nothing was made, so nothing was billed."""

    def __init__(
        self, state: Literal["FAILED", "EXPIRED", "CANCELLED", "LOST", "TIMEOUT"], message: str = "", *, hours: float
    ) -> None:
        super().__init__(f"batch job {state.lower()}" + (f": {message}" if message else ""))
        self.state = state
        self.detail = message
        self.hours = hours  # how long the job waited
        self.billed = False


class CircuitOpen(UpstreamError):
    """Repeated upstream failures: the gate stopped sending for a cool-down."""

    def __init__(self, until_ts: float) -> None:
        super().__init__("upstream circuit open")
        self.until_ts = until_ts
