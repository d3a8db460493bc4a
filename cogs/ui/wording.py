"""What users read: the one mapping from failures to words, and the quota line, with Discord's markup
(`<t:…:R>` timestamps count down in each reader's own client). Pure: no discord import, so the CLI uses it too."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import (
    AttemptsExhausted,
    BudgetExhausted,
    Cancelled,
    ChoiceRefused,
    CircuitOpen,
    CoolingDown,
    GenerationFailed,
    ImageBlocked,
    InvalidRequest,
    ModelUnavailable,
    ModerationBlocked,
    NotAllowed,
    NotHere,
    OperatorError,
    PromptBlocked,
    QueueFull,
    QuotaExceeded,
    RateLimited,
    ShuttingDown,
    TextOnlyAnswer,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.moderation import CATEGORY_DESCRIPTIONS
from bot.quota import ROLE, QuotaStatus


@dataclass(frozen=True, slots=True)
class UserMessage:
    text: str
    # Refusals and input errors go only to the requester; failures of a visible job can stay public.
    ephemeral: bool = True


def relative_time(ts: float) -> str:
    """A Discord timestamp that reads \"in 5 minutes\" in each reader's client."""
    return f"<t:{int(ts)}:R>"


def _quote(text: str, limit: int = 1500) -> str:
    """Discord quote markup, clipped after quoting: many short lines would otherwise pass Discord's 2000."""
    quoted = "\n".join("> " + line for line in text.strip().splitlines() or [""])
    return quoted if len(quoted) <= limit else quoted[: limit - 1] + "…"


def _cooldown_note(exc: ModerationBlocked | PromptBlocked | ImageBlocked) -> str:
    """A refusal that put the user on a moderation cool-down says so at once (moderation sets the detail)."""
    until = getattr(exc, "cooldown_until", None)
    if not isinstance(until, int | float):
        return ""
    return f"\n⏸️ That makes too many blocked prompts in a short time: you can generate again {relative_time(until)}."


def user_message(exc: BaseException, *, public: bool = False) -> UserMessage:
    """The one mapping from failures to what a user reads. Unknown exceptions get a generic apology. `public`: the
    words go to a channel, not only to the user, so a blocked term is not repeated there."""
    refunded = " Your quota was not charged."
    match exc:
        case ChoiceRefused():
            return UserMessage(choice_refused(exc))
        case InvalidRequest():
            return UserMessage(str(exc))
        case ModerationBlocked(category=category, term=term):
            said = f" (matched “{term}”)" if term and not public else ""
            rule = f"**{CATEGORY_DESCRIPTIONS.get(category, category)}**{said}"
            what = "an earlier instruction of this picture's conversation" if exc.in_history else "that prompt"
            if category == "csam":  # nobody can switch this rule off, so nobody is worth asking
                lead, ask = f"🚫 The bot never allows {what}: {rule}.", ""
            elif exc.in_dm:
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
                f"⏸️ Too many blocked prompts in a short time: you can generate again {relative_time(until)}. "
                "A moderator can lift this sooner."
            )
        case QuotaExceeded(scope="everywhere", limit=limit, needed=needed, left=left, resets_at_ts=reset):
            return UserMessage(
                f"That picture costs {credits(needed)}, and you have {left} of the {limit} credits the bot allows "
                f"one member per day across all servers and DMs. It resets {relative_time(reset)}; a cheaper "
                "model or size may still fit (`/models`)."
            )
        case QuotaExceeded(limit=0, resets_at_ts=reset):
            return UserMessage(
                f"You can't generate images on this server today (your daily limit here is 0 credits). It resets "
                f"{relative_time(reset)}; use `/quota` to see where the limit comes from."
            )
        case QuotaExceeded(limit=limit, needed=needed, left=left, resets_at_ts=reset) if left > 0:
            return UserMessage(
                f"That picture costs {credits(needed)} and you have {left} of your {limit} left today. Pick a "
                f"cheaper model or size (`/models` shows the prices), or wait for the reset {relative_time(reset)}."
            )
        case QuotaExceeded(limit=limit, resets_at_ts=reset):
            return UserMessage(
                f"You've used all {limit} of your credits for today. Your quota resets {relative_time(reset)}. "
                "Use `/quota` to see where you stand."
            )
        case AttemptsExhausted(limit=limit, resets_at_ts=reset):
            return UserMessage(
                f"You've asked the image model {limit} times today (answers without a picture count too), which "
                f"is the bot's daily limit per member. It resets {relative_time(reset)}."
            )
        case BudgetExhausted(scope=scope, resets_at_ts=reset):
            whose = "This server's" if scope == "server" else "The bot's"
            return UserMessage(
                f"{whose} daily image budget is used up (this is not your personal quota). "
                f"It resets {relative_time(reset)}; your quota was not charged."
            )
        case QueueFull(limit=limit):
            return UserMessage(
                f"You already have {limit} requests waiting or running. Wait for one to finish, then try again."
            )
        case NotAllowed(action=action):
            return UserMessage(
                f"Only the person who asked for this picture, or a moderator who can manage messages, can {action} it."
            )
        case NotHere():
            return UserMessage(not_here_text(exc))
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
                "Google's image model has been failing repeatedly, so the bot paused sending until "
                f"{relative_time(until)}." + refunded
            )
        case ModelUnavailable():
            return UserMessage(
                "The image model this bot is set up to use isn't available to it (the model was retired or this "
                "bot's Google project can't use it). This is not your fault: please tell the bot's operator." + refunded
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


def not_here_text(exc: NotHere) -> str:
    """Where the bot may be used, in the words of the rule that refused (mentions render as names)."""
    if exc.rule == "dms":
        return "🔒 The bot doesn't take requests in direct messages. Use it in a server you share with it."
    if exc.rule == "thread":
        return "🔒 This server doesn't allow the image bot in threads. Ask in a channel instead."
    if exc.rule == "role":
        roles = " or ".join(f"<@&{role}>" for role in exc.roles)
        return f"🔒 On this server, only members with the role {roles} can make images."
    where = ""
    if exc.allowed:
        where = " It can be used in " + ", ".join(f"<#{place}>" for place in exc.allowed) + "."
    return f"🔒 This server doesn't allow the image bot in this channel.{where}"


def credits(n: int) -> str:
    return f"{n} credit{'s' if n != 1 else ''}"


def choice_refused(exc: ChoiceRefused) -> str:
    """What a refused model, size, ratio or input count reads like: what was asked, and what is possible."""
    possible = ", ".join(exc.possible) or "nothing"
    nothing = " Nothing was sent and nothing was charged."
    if exc.not_allowed:
        return (
            f"This server doesn't let you use {exc.model}"
            + (f" at {exc.chosen}" if exc.what == "size" else "")
            + f". You may use: {possible}."
            + nothing
        )
    match exc.what:
        case "model":
            return f"There is no model “{exc.chosen}” here. Choose one of: {possible}." + nothing
        case "size":
            return f"{exc.model} can't make {exc.chosen} pictures; it makes {possible}." + nothing
        case "aspect ratio":
            return f"{exc.model} can't make {exc.chosen} pictures; its aspect ratios are {possible}." + nothing
    return f"{exc.model} takes at most {possible} images at once; this edit would send {exc.chosen}." + nothing


def quota_headline(left: int | None, allowance: int | None, resets_at: float, *, spent: int | None = None) -> str:
    """ "4 credits · 6 of 10 left today · resets <t:…:R>": the line under a delivered image (with what it cost)
    and the headline of `/quota`."""
    reset = f"resets {relative_time(resets_at)}"
    cost = f"{credits(spent)} · " if spent is not None else ""
    if allowance is None:
        return f"{cost}{'No daily limit' if left is None else f'{left} left today'} · {reset}"
    return f"{cost}{left} of {allowance} left today · {reset}"


def footer_text(status: QuotaStatus) -> str:
    """The member's standing: what they may still spend, under this server's limit and the bot-wide cap."""
    return quota_headline(status.spendable, status.allowance, status.resets_at)


def source_text(status: QuotaStatus) -> str:
    """E.g. "role <@&123> + 2 granted today"; Discord renders the role mention as the role's name."""
    text = f"role <@&{status.role_id}>" if status.source == ROLE else status.source
    if status.granted and status.limit is not None:
        text += f" + {status.granted} granted today"
    return text
