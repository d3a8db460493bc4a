"""What users read: the one mapping from failures to words, and the quota line, with Discord's markup
(`<t:…:R>` timestamps count down in each reader's own client). Pure: no discord import, so the CLI uses it too."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.errors import (
    AttemptsExhausted,
    BatchEnded,
    BotBusy,
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
    RelaxUnavailable,
    ShuttingDown,
    Suspended,
    TextOnlyAnswer,
    TooManyRefusedImages,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bot.moderation import AI_UNAVAILABLE, CATEGORY_DESCRIPTIONS, AppealResult
from bot.quota import ROLE, QuotaStatus


@dataclass(frozen=True, slots=True)
class UserMessage:
    text: str
    # Refusals and input errors go only to the requester; failures of a visible job can stay public.
    ephemeral: bool = True


# Every character Discord's markdown gives a meaning: emphasis, spoilers, code, quotes, headings, lists, masked
# links, mentions and timestamps (`<...>`), and the backslash itself, so a user's own `\` cannot escape ours.
_MARKDOWN = re.compile(r"([\\*_~|`>#+\-\[\]()<])")


def escape(text: str) -> str:
    """User or model text as typed, with nothing in it read as markup: no masked link, heading, spoiler or
    mention can come out of it. Discord drops a backslash before any punctuation character and shows the
    character, so escaping more than needed changes nothing the reader sees. (discord.utils.escape_markdown
    escapes only the first of two masked links.)"""
    return _MARKDOWN.sub(r"\\\1", text)


def relative_time(ts: float) -> str:
    """A Discord timestamp that reads \"in 5 minutes\" in each reader's client."""
    return f"<t:{int(ts)}:R>"


def _quote(text: str, limit: int = 1500) -> str:
    """Someone else's words (the model's, Google's) as a Discord quote, escaped, and clipped after quoting: many
    short lines would otherwise pass Discord's 2000."""
    quoted = "\n".join("> " + escape(line) for line in text.strip().splitlines() or [""])
    return quoted if len(quoted) <= limit else quoted[: limit - 1] + "…"


def _cooldown_note(exc: ModerationBlocked | PromptBlocked | ImageBlocked) -> str:
    """A refusal that put the user on a moderation cool-down says so at once (moderation sets the detail)."""
    until = getattr(exc, "cooldown_until", None)
    if not isinstance(until, int | float):
        return ""
    return f"\n⏸️ That makes too many blocked prompts in a short time: you can generate again {relative_time(until)}."


def _whose(exc: UpstreamError, thing: str, *, start: bool = False, owner: str = "") -> str:
    """ "Google's image model", "OpenRouter's safety filter": the provider that raised it, by the name users read
    (PROVIDER_N_DISPLAY_NAME), as it was written; neutral words ("the image model", or the `owner`'s) when no single
    provider did (every provider of several failed). `start`: at the start of a sentence."""
    if exc.provider_label:
        return f"{exc.provider_label}'s {thing}"
    whose = f"{owner}'s {thing}" if owner else thing
    return f"{'The' if start else 'the'} {whose}"


def _rule(exc: UpstreamError) -> str:
    return _whose(exc, "rule", owner="image provider")


def _ai_block(exc: ModerationBlocked, public: bool) -> str:
    """A block by the AI second opinion: the model's short reason (to the member only; none for csam, which would
    coach), and the Appeal button under it when the block can be appealed."""
    appeal = exc.appeal_id is not None
    if exc.category == AI_UNAVAILABLE:
        lines = ["🤖 The AI moderator could not check that prompt just now, so it was held back."]
        ask = " Try again in a moment" + (", or press **Appeal**." if appeal else ".")
    else:
        rule = CATEGORY_DESCRIPTIONS.get(exc.category, exc.category)
        lines = [f"🤖 The AI moderator judged that prompt as **{rule}**."]
        if exc.reason and not public and exc.category != "csam":
            lines.append(_quote(exc.reason, 300))
        ask = " If you think it got this wrong, press **Appeal**." if appeal else ""
    lines.append("Nothing was sent to the image model and your quota was not charged." + ask)
    return "\n".join(lines) + _cooldown_note(exc)


def appeal_text(result: AppealResult) -> str:
    """What the member reads once their appeal was decided."""
    left = f"You have {result.appeals_left} appeal{'' if result.appeals_left == 1 else 's'} left today."
    reason = _quote(result.reason, 300) if result.reason else ""
    if result.outcome == "overturned":
        return "\n".join(filter(None, ["⚖️ Appeal accepted.", reason, "Send the prompt again and it will go through."]))
    if result.outcome == "upheld":
        return "\n".join(filter(None, ["⚖️ Appeal turned down: the block stands.", reason, left]))
    return f"⚖️ Your appeal was recorded for the moderators to review. {left}"


def user_message(exc: BaseException, *, public: bool = False) -> UserMessage:
    """The one mapping from failures to what a user reads. Unknown exceptions get a generic apology. `public`: the
    words go to a channel, not only to the user, so a blocked term is not repeated there."""
    refunded = " Your quota was not charged."
    match exc:
        case ChoiceRefused():
            return UserMessage(choice_refused(exc))
        case InvalidRequest():
            return UserMessage(str(exc))
        case TooManyRefusedImages(limit=limit, until_ts=until):
            return UserMessage(
                f"The last {limit} images you sent couldn't be used (damaged, too large or not images), so I'm not "
                f"reading new images from you until {relative_time(until)}. Requests without images still work."
            )
        case ModerationBlocked(tier="ai"):
            return UserMessage(_ai_block(exc, public))
        case ModerationBlocked(category=category, term=term):
            said = f" (matched “{escape(term)}”)" if term and not public else ""
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
        case CoolingDown(until_ts=until, elsewhere=elsewhere):
            who = (
                "It began in another server or in direct messages with the bot and applies everywhere the bot is."
                if elsewhere
                else "A moderator can lift this sooner."
            )
            return UserMessage(
                f"⏸️ Too many blocked prompts in a short time: you can generate again {relative_time(until)}. {who}"
            )
        case QuotaExceeded(lane="relax", limit=limit, needed=needed, left=left, resets_at_ts=reset):
            return UserMessage(
                f"That relax picture costs {credits(needed)} and your relax allowance has {left} of {limit} left "
                f"today. It resets {relative_time(reset)}; until then pictures are made at once, from your own "
                "credits (`/imagine` without `relax`), or pick a cheaper model or size. Use `/quota` to see where "
                "you stand."
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
        case RelaxUnavailable(reason="gateways-only"):
            return UserMessage(
                "Relax mode isn't available on this bot: it uses Google's own half-price Flex and Batch service, and "
                "this bot reaches the image model only through gateways, which have no such lane. Use `/imagine` "
                "without `relax`."
            )
        case RelaxUnavailable(reason="off"):
            return UserMessage("Relax mode is switched off on this bot. Use `/imagine` without `relax`.")
        case RelaxUnavailable(reason="edits"):
            return UserMessage(
                "Relax mode makes new pictures only (`/imagine relax:True`); edits are made at once, from your "
                "own credits."
            )
        case BatchEnded(state="EXPIRED" | "TIMEOUT" | "LOST", hours=hours):
            return UserMessage(
                f"🐢 Google's batch queue didn't get to your relax picture in time (it waited {_hours(hours)} and "
                "expired). Your relax credits were refunded: try again, or use `/imagine` without `relax`.",
                False,
            )
        case BatchEnded(hours=hours):
            return UserMessage(
                f"🐢 Google's batch job for your relax picture failed after {_hours(hours)}. Your relax credits "
                "were refunded: please try again.",
                False,
            )
        case QueueFull(limit=limit):
            return UserMessage(
                f"You already have {limit} requests waiting or running. Wait for one to finish, then try again."
            )
        case BotBusy(limit=limit):
            return UserMessage(
                f"The bot is very busy: {limit} pictures are already waiting or being made, the most it takes on "
                "at once. Please try again in a few minutes; your quota was not charged."
            )
        case NotAllowed(action=action):
            return UserMessage(
                f"Only the person who asked for this picture, or a moderator who can manage messages, can {action} it."
            )
        case NotHere():
            return UserMessage(not_here_text(exc))
        case Cancelled():
            return UserMessage("Cancelled." + refunded)
        case Suspended():
            return UserMessage(
                "🐢 The bot is restarting. Your relax request keeps its place and carries on afterwards; I'll still "
                "post the picture in this channel and mention you.",
                False,
            )
        case ShuttingDown():
            return UserMessage(
                "The bot is restarting, so your request was stopped before it finished." + refunded, False
            )
        case PromptBlocked(reason=reason):
            who, rule = _whose(exc, "safety filter", start=True, owner="image provider"), _rule(exc)
            return UserMessage(
                f"🛡️ {who} refused this prompt ({reason}). This is {rule}, not this server's: try rephrasing."
                + refunded
                + _cooldown_note(exc)
            )
        case ImageBlocked(reason=reason, message=message):
            who, rule = _whose(exc, "safety filter", start=True, owner="image provider"), _rule(exc)
            extra = f"\n{_quote(message)}" if message else ""
            return UserMessage(
                f"🛡️ {who} stopped the image it was making ({reason}). This is {rule}, not this server's: try "
                f"describing it differently.{refunded}{_cooldown_note(exc)}{extra}"
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
            return UserMessage(
                f"{_whose(exc, 'image model', start=True)} is overloaded right now. Please try again in a minute."
                + refunded
            )
        case CircuitOpen(until_ts=until):
            return UserMessage(
                f"{_whose(exc, 'image model', start=True)} has been failing repeatedly, so the bot paused sending "
                f"until {relative_time(until)}." + refunded
            )
        case ModelUnavailable():
            account = f"bot's {exc.provider_label} account" if exc.provider_label else "bot's account"
            if exc.provider_label == "Google":
                account = "bot's Google project"
            return UserMessage(
                "The image model this bot is set up to use isn't available to it (the model was retired or this "
                f"{account} can't use it). This is not your fault: please tell the bot's operator." + refunded
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


def _hours(hours: float) -> str:
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    return f"{hours:.0f} h" if hours >= 10 else f"{hours:.1f} h"


def relax_offer_text(exc: QuotaExceeded, cost: int) -> str:
    """The refusal of a member out of credits, with the offer to queue the same picture in relax mode."""
    left = "unlimited" if exc.relax_left is None else f"{exc.relax_left} left today"
    return (
        user_message(exc).text
        + f"\n🐢 **Queue it in relax mode at half price?** It costs {credits(cost)} from your separate relax "
        f"allowance ({left}). Google makes it when it has room, usually within minutes, at worst within a day; "
        "I'll post it in this channel and mention you."
    )


def relax_headline(left: int | None, allowance: int | None, resets_at: float, *, spent: int | None = None) -> str:
    """ "🐢 relax · 1 credit · 9 of 10 relax credits left today · resets <t:…:R>": under a relax picture (with what
    it cost), and in `/quota`."""
    if allowance == 0:
        return "🐢 Relax mode is off on this bot"
    cost = f"{credits(spent)} · " if spent is not None else ""
    standing = "no daily limit" if allowance is None else f"{left} of {allowance} relax credits left today"
    return f"🐢 relax · {cost}{standing} · resets {relative_time(resets_at)}"


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
