"""One exception hierarchy for the whole bot, and the one place that turns it into words for users.

Every failure a user can meet is a subclass of `BotError`. Providers map their wire errors into the
`UpstreamError` branch; the pipeline and cogs never look at HTTP statuses. `user_message(exc)` is what the user
reads; `str(exc)` is the detail for the log (never a secret).
"""

from __future__ import annotations

from dataclasses import dataclass


class BotError(Exception):
    """Base of every expected failure. Whatever the subclass, a reservation taken for the request is refunded."""

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message)
        self.details = details


# --- before anything is spent -------------------------------------------------------------------------------


class ConfigError(BotError):
    """A setting is missing or invalid; raised at start, never seen by users."""


class InvalidRequest(BotError):
    """The user's input is unusable (prompt too long, wrong file type, ...). The message says exactly why."""


class ModerationBlocked(BotError):
    """This server's rules refused the text before anything reached Google."""

    def __init__(self, category: str, term: str | None = None, *, reason: str = "") -> None:
        super().__init__(reason or f"blocked by rule {category}")
        self.category = category
        self.term = term


class CoolingDown(BotError):
    """The user was put on a moderation cool-down after repeated blocks."""

    def __init__(self, until_ts: float) -> None:
        super().__init__("moderation cool-down")
        self.until_ts = until_ts


class QuotaExceeded(BotError):
    def __init__(self, limit: int, resets_at_ts: float) -> None:
        super().__init__(f"daily quota of {limit} used up")
        self.limit = limit
        self.resets_at_ts = resets_at_ts


class BudgetExhausted(BotError):
    """A spending cap (per server or global) is reached: the server's budget, not the user's quota."""

    def __init__(self, scope: str, resets_at_ts: float) -> None:
        super().__init__(f"{scope} daily budget reached")
        self.scope = scope
        self.resets_at_ts = resets_at_ts


class QueueFull(BotError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"already {limit} requests queued or running")
        self.limit = limit


class NotAllowed(BotError):
    """A member pressed a button of someone else's request (`action`: "cancel", "delete")."""

    def __init__(self, action: str) -> None:
        super().__init__(f"not allowed to {action}")
        self.action = action


class Cancelled(BotError):
    """The requester (or a moderator) cancelled a waiting request."""


class ShuttingDown(BotError):
    """The bot is stopping; the request was not started and is refunded."""


# --- upstream (provider) failures ----------------------------------------------------------------------------


class UpstreamError(BotError):
    """Something went wrong at or on the way to the image provider. Which ones are retried is decided in
    `bot.retry`, in one place."""


class PromptBlocked(UpstreamError):
    """Google refused the prompt (`promptFeedback.blockReason`, or no candidates at all)."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(f"prompt blocked: {reason}")
        self.reason = reason
        self.message = message


class ImageBlocked(UpstreamError):
    """Google generated nothing it would show: the candidate finished with a safety-type reason."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(f"image blocked: {reason}")
        self.reason = reason
        self.message = message


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


class UpstreamTimeout(UpstreamError):
    """No answer within the deadline."""


class CircuitOpen(UpstreamError):
    """Repeated upstream failures: the gate stopped sending for a cool-down."""

    def __init__(self, until_ts: float) -> None:
        super().__init__("upstream circuit open")
        self.until_ts = until_ts


# --- words for users -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserMessage:
    text: str
    # Refusals and input errors go only to the requester; failures of a visible job can stay public.
    ephemeral: bool = True


def _rel(ts: float) -> str:
    return f"<t:{int(ts)}:R>"


def _quote(text: str, limit: int = 1500) -> str:
    """Discord quote markup, clipped after quoting: many short lines would otherwise pass Discord's 2000."""
    quoted = "\n".join("> " + line for line in text.strip().splitlines() or [""])
    return quoted if len(quoted) <= limit else quoted[: limit - 1] + "…"


def _cooldown_note(exc: BotError) -> str:
    """A refusal that put the user on a moderation cool-down says so at once (moderation sets the detail)."""
    until = exc.details.get("cooldown_until")
    if not isinstance(until, int | float):
        return ""
    return f"\n⏸️ That makes too many blocked prompts in a short time: you can generate again {_rel(until)}."


def user_message(exc: BaseException, *, public: bool = False) -> UserMessage:
    """The one mapping from failures to what a user reads. Unknown exceptions get a generic apology. `public`: the
    words go to a channel, not only to the user, so a blocked term is not repeated there."""
    from bot.moderation.filter import CATEGORY_DESCRIPTIONS

    refunded = " Your quota was not charged."
    match exc:
        case InvalidRequest():
            return UserMessage(str(exc))
        case ModerationBlocked(category=category, term=term):
            said = f" (matched “{term}”)" if term and not public else ""
            rule = f"**{CATEGORY_DESCRIPTIONS.get(category, category)}**{said}"
            what = (
                "an earlier instruction of this picture's conversation"
                if exc.details.get("in_history")
                else "that prompt"
            )
            if category == "csam":  # nobody can switch this rule off, so nobody is worth asking
                lead, ask = f"🚫 The bot never allows {what}: {rule}.", ""
            elif exc.details.get("in_dm"):
                lead, ask = f"🚫 The bot's rules don't allow {what}: {rule}.", " ask the bot's operator."
            else:
                lead, ask = f"🚫 This server's rules don't allow {what}: {rule}.", " ask this server's moderators."
            return UserMessage(
                f"{lead} Nothing was sent to the image model and your quota was not charged."
                + (f" If you think this is a mistake,{ask}" if ask else "")
                + _cooldown_note(exc)
            )
        case CoolingDown(until_ts=until):
            return UserMessage(
                f"⏸️ Too many blocked prompts in a short time: you can generate again {_rel(until)}. "
                "A moderator can lift this sooner."
            )
        case QuotaExceeded(limit=0, resets_at_ts=reset):
            return UserMessage(
                f"You can't generate images on this server today (your daily limit here is 0). It resets "
                f"{_rel(reset)}; use `/quota` to see where the limit comes from."
            )
        case QuotaExceeded(limit=limit, resets_at_ts=reset):
            return UserMessage(
                f"You've used all {limit} of your images for today. Your quota resets {_rel(reset)}. "
                "Use `/quota` to see where you stand."
            )
        case BudgetExhausted(scope=scope, resets_at_ts=reset):
            whose = "This server's" if scope == "server" else "The bot's"
            return UserMessage(
                f"{whose} daily image budget is used up (this is not your personal quota). "
                f"It resets {_rel(reset)}; your quota was not charged."
            )
        case QueueFull(limit=limit):
            return UserMessage(
                f"You already have {limit} requests waiting or running. Wait for one to finish, then try again."
            )
        case NotAllowed(action=action):
            return UserMessage(
                f"Only the person who asked for this picture, or a moderator who can manage messages, can {action} it."
            )
        case Cancelled():
            return UserMessage("Cancelled." + refunded)
        case ShuttingDown():
            return UserMessage(
                "The bot is restarting, so your request was stopped before it finished." + refunded, False
            )
        case PromptBlocked(reason=reason):
            return UserMessage(
                f"🛡️ Google's safety filter refused this prompt ({reason}). This is Google's rule, not this "
                "server's: try rephrasing." + refunded + _cooldown_note(exc)
            )
        case ImageBlocked(reason=reason, message=message):
            extra = f"\n{_quote(message)}" if message else ""
            return UserMessage(
                f"🛡️ Google's safety filter stopped the image it was making ({reason}). This is Google's rule, "
                f"not this server's: try describing it differently.{refunded}{_cooldown_note(exc)}{extra}"
            )
        case TextOnlyAnswer(text=text):
            return UserMessage(
                "The model answered in words instead of drawing:\n" + _quote(text) + "\nTry a more concrete "
                "description of the picture you want." + refunded,
                False,
            )
        case GenerationFailed(reason=reason):
            return UserMessage(f"The model finished without an image ({reason}). Please try again." + refunded)
        case RateLimited() | UpstreamUnavailable():
            return UserMessage("Google's image model is overloaded right now. Please try again in a minute." + refunded)
        case CircuitOpen(until_ts=until):
            return UserMessage(
                f"Google's image model has been failing repeatedly, so the bot paused sending until {_rel(until)}."
                + refunded
            )
        case OperatorError():
            return UserMessage(
                "The bot can't reach the image model because of a problem with its own setup (API key, billing "
                "or model quota). This is not your fault: please tell the bot's operator." + refunded
            )
        case UpstreamTimeout():
            return UserMessage("The image model took too long to answer. Please try again." + refunded)
    # Not only the pipeline lands here (a failed button, an admin command), so no claim about the quota.
    return UserMessage("Something went wrong on our side. Please try again.")
