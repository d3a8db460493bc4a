"""`/moderation`: a server's prompt rules for its admins, and the moderation log channel.

Every subcommand needs Manage Server (hidden from other members and checked again on the bot's side, see
`cogs.ui.checks`) and answers ephemerally. Changes go through `bot.moderation.Moderation`, which drops its
cached policy, so the next request already sees them. Blocks reach the log channel through the store's
`on_block` hook, and appeals of the AI moderator's blocks through `appeals.on_appeal`, posted in the background
so that a slow or broken log channel never delays the user's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import BotError
from bot.moderation.appeals import AppealResult
from bot.moderation.filter import CATEGORIES, CATEGORY_DESCRIPTIONS, Explanation
from bot.moderation.store import MAX_TERM_CHARS, AuditEntry, Moderation, ModerationConfig
from cogs.ui.checks import ManageGuildGroup
from cogs.ui.common import send_ephemeral
from cogs.ui.render import clip, fit_lines
from cogs.ui.wording import escape, user_message

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

DESCRIPTION_LIMIT = 4096  # Discord: embed description
FIELD_LIMIT = 1024  # Discord: embed field value
MAX_LOG_ROWS = 50
BLOCKED, ALLOWED, SERIOUS = discord.Colour(0xD93025), discord.Colour(0x1E8E3E), discord.Colour(0xF29900)
SOURCES = {"bot": "this server's rules", "google": "Google's safety filter", "ai": "the AI moderator"}
OUTCOMES = {"overturned": "✅ overturned", "upheld": "❌ upheld", "referred": "👀 for the moderators to review"}
TERM_KINDS = [
    app_commands.Choice(name="block: refuse prompts that contain it", value="block"),
    app_commands.Choice(name="allow: an exception to the optional categories", value="allow"),
]
CATEGORY_CHOICES = [
    app_commands.Choice(name=clip(f"{c}: {CATEGORY_DESCRIPTIONS[c]}", 100), value=c) for c in CATEGORIES
]


# --- rendering (pure) ---------------------------------------------------------------------------------------


def _category(name: str) -> str:
    return CATEGORY_DESCRIPTIONS.get(name, name)


def _quoted(text: str, limit: int) -> str:
    """User text on one line, clipped and with its markdown shown as typed."""
    return escape(clip(" ".join(text.split()), limit))


def explanation_embed(explanation: Explanation) -> discord.Embed:
    """What `/moderation test` shows: the verdict as the title, every view and rule in a code block (so
    dots, asterisks and look-alike letters show exactly as the filter read them)."""
    verdict = explanation.verdict
    if verdict.allowed:
        title, colour = "✅ Allowed here", ALLOWED
    else:
        title, colour = f"🚫 Blocked here: {_category(verdict.category or '')}", BLOCKED
    lines = [clip(line, 600).replace("```", "`\u200b`\u200b`") for line in explanation.lines()]
    body = fit_lines(lines, DESCRIPTION_LIMIT - len("```\n\n```"))
    embed = discord.Embed(title=clip(title, 256), description=f"```\n{body}\n```", colour=colour)
    embed.add_field(name="Why", value=clip(escape(verdict.explanation or "no rule matched"), FIELD_LIMIT), inline=False)
    embed.add_field(name="Decided by", value=clip(verdict.decided_by, FIELD_LIMIT), inline=False)
    return embed


def config_embed(config: ModerationConfig) -> discord.Embed:
    embed = discord.Embed(title="Moderation in this server", colour=SERIOUS)
    if not config.moderation_enabled:
        embed.description = (
            "⚠️ The bot's operator switched moderation off: only the csam rule applies, whatever is set here."
        )
    categories = [f"{'✅' if on else '⬜'} `{name}`: {_category(name)}" for name, on in config.enabled.items()]
    embed.add_field(name="Categories", value="\n".join(categories), inline=False)
    for title, terms in (("Blocked terms", config.blocked_terms), ("Allowed terms", config.allowed_terms)):
        shown = fit_lines([f"• {escape(term)}" for term in terms], FIELD_LIMIT) if terms else "none"
        embed.add_field(name=f"{title} ({len(terms)})", value=shown, inline=False)
    channel = f"<#{config.log_channel_id}>" if config.log_channel_id else "none (`/moderation logchannel` sets one)"
    embed.add_field(name="Log channel", value=channel, inline=False)
    return embed


def _source(entry: AuditEntry) -> str:
    """Who blocked it: this server's word lists and rules, the AI moderator (and whether an appeal overturned
    that), or the image provider's filter (Google's unless the entry names another)."""
    if entry.tier == "ai":
        return SOURCES["ai"] + (" (overturned on appeal)" if entry.overturned_at is not None else "")
    if entry.source == "google" and entry.provider and entry.provider != "Google":
        return f"{entry.provider}'s safety filter"  # a gateway's filter: by the name members read for it
    return SOURCES.get(entry.source, entry.source)


def log_embed(entries: Sequence[AuditEntry], user: discord.abc.User | None) -> discord.Embed:
    header = f"Blocks of {user.mention}\n" if user else ""
    lines = [
        f"<t:{int(e.created_at)}:f> <@{e.user_id}> in <#{e.channel_id}> · **{_category(e.category)}**"
        f" · {_source(e)}\n> {_quoted(e.text, 150)}"
        for e in entries
    ]
    body = fit_lines(lines, DESCRIPTION_LIMIT - len(header)) if lines else "No blocked prompts recorded."
    return discord.Embed(title="Recent blocked prompts", description=header + body, colour=SERIOUS)


def block_embed(entry: AuditEntry, cooldown_until: float | None) -> discord.Embed:
    """The log channel's notice of one block. The prompt is a spoiler: moderators choose to read it."""
    ours = entry.source == "bot"
    title = "🚫 Prompt blocked by this server's rules" if ours else f"🛡️ Prompt blocked by {_source(entry)}"
    if entry.tier == "ai":
        title = "🤖 Prompt blocked by the AI moderator"
    embed = discord.Embed(
        title=title,
        description=f"||{_quoted(entry.text, 1000)}||",  # escaped: the prompt cannot close the spoiler
        colour=BLOCKED if ours else SERIOUS,
        timestamp=datetime.fromtimestamp(entry.created_at, UTC),
    )
    # Mentions inside an embed render as names and never ping.
    embed.add_field(name="User", value=f"<@{entry.user_id}>")
    embed.add_field(name="Channel", value=f"<#{entry.channel_id}>")
    category = _category(entry.category) + (f" (term: {escape(entry.term)})" if entry.term else "")
    embed.add_field(name="Category", value=clip(category, FIELD_LIMIT))
    embed.add_field(name="Source", value=_source(entry))
    if entry.tier == "ai":
        embed.add_field(name="Why", value=clip(escape(entry.detail), FIELD_LIMIT), inline=False)
    if cooldown_until is not None:
        embed.add_field(name="Cool-down", value=f"until <t:{int(cooldown_until)}:t> · `/moderation lift`")
    return embed


def appeal_embed(block: AuditEntry, result: AppealResult) -> discord.Embed:
    """The log channel's notice of an appeal of the AI moderator's block, and how it ended."""
    embed = discord.Embed(
        title=f"⚖️ Appeal of an AI moderator block: {OUTCOMES[result.outcome]}",
        description=f"||{_quoted(block.text, 1000)}||",
        colour=ALLOWED if result.overturned else SERIOUS,
    )
    embed.add_field(name="User", value=f"<@{block.user_id}>")
    embed.add_field(name="Channel", value=f"<#{block.channel_id}>")
    embed.add_field(name="Blocked as", value=_category(block.category))
    embed.add_field(name="Decided by", value=clip(result.decided_by, FIELD_LIMIT))
    reason = clip(escape(result.reason) or "none given", FIELD_LIMIT)
    embed.add_field(name="Reason", value=reason, inline=False)
    return embed


# --- the cog ------------------------------------------------------------------------------------------------


class ModerationCog(commands.Cog):
    moderation = ManageGuildGroup(name="moderation", description="This server's rules for prompts (Manage Server)")

    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot
        self._posts: set[asyncio.Task[None]] = set()

    @property
    def store(self) -> Moderation:
        return self.bot.services.moderation

    async def cog_load(self) -> None:
        if self.bot.serving:
            self.store.on_block = self.on_block
            self.store.appeals.on_appeal = self.on_appeal

    async def cog_unload(self) -> None:
        if self.bot.serving and self.store.on_block == self.on_block:
            self.store.on_block = None
        if self.bot.serving and self.store.appeals.on_appeal == self.on_appeal:
            self.store.appeals.on_appeal = None
        if self._posts:
            # At shutdown the last blocks still get a few seconds to reach the log channel (the whole stop has to fit
            # in the container's stop timeout).
            _, late = await asyncio.wait(self._posts, timeout=min(5.0, self.bot.settings.shutdown_grace_seconds))
            for task in late:
                task.cancel()

    # --- log channel ------------------------------------------------------------------------------------

    async def on_block(self, entry: AuditEntry, cooldown_until: float | None) -> None:
        if entry.guild_id is not None:
            self._post(entry.guild_id, block_embed(entry, cooldown_until))

    async def on_appeal(self, block: AuditEntry, result: AppealResult) -> None:
        if block.guild_id is not None:
            self._post(block.guild_id, appeal_embed(block, result))

    def _post(self, guild_id: int, embed: discord.Embed) -> None:
        task = asyncio.create_task(self._post_embed(guild_id, embed))
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _post_embed(self, guild_id: int, embed: discord.Embed) -> None:
        channel_id = await self.store.get_log_channel(guild_id)
        if channel_id is None:
            return
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("the moderation log channel %s of guild %s is gone", channel_id, guild_id)
            return
        try:
            await channel.send(embed=embed)
        except discord.HTTPException as exc:
            log.warning("could not post to the moderation log channel %s of guild %s: %s", channel_id, guild_id, exc)

    # --- commands ---------------------------------------------------------------------------------------

    @moderation.command(name="add")
    @app_commands.describe(
        term="A word or phrase; end it with * to also catch words that start with it",
        kind="block (default) refuses prompts with it; allow makes it an exception",
    )
    @app_commands.choices(kind=TERM_KINDS)
    async def add(
        self,
        interaction: discord.Interaction,
        term: app_commands.Range[str, 1, MAX_TERM_CHARS],
        kind: app_commands.Choice[str] | None = None,
    ) -> None:
        """Block a term in prompts here, or allow one the built-in rules would block."""
        kind_value = kind.value if kind else "block"
        assert interaction.guild_id is not None  # the group is guild-only
        try:
            added = await self.store.add_term(interaction.guild_id, term, kind_value, by=interaction.user.id)
        except BotError as exc:
            await send_ephemeral(interaction, user_message(exc).text)
            return
        shown = escape(term)
        if not added:
            text = f"This server already has a {kind_value} term that reads like “{shown}”."
        elif kind_value == "block":
            text = f"Blocked “{shown}”: from the next request on, prompts with it are refused here."
        else:
            text = (
                f"Allowed “{shown}”: from the next request on, it no longer trips the optional categories "
                "(the csam rule stays as it is)."
            )
        await send_ephemeral(interaction, text)

    @moderation.command(name="remove")
    @app_commands.describe(
        term="The term as you added it (any spelling that reads the same works)",
        kind="Only remove it from this list (default: both)",
    )
    @app_commands.choices(kind=TERM_KINDS)
    async def remove(
        self,
        interaction: discord.Interaction,
        term: app_commands.Range[str, 1, MAX_TERM_CHARS],
        kind: app_commands.Choice[str] | None = None,
    ) -> None:
        """Remove one of this server's blocked or allowed terms."""
        assert interaction.guild_id is not None
        removed = await self.store.remove_term(interaction.guild_id, term, kind.value if kind else None)
        shown = escape(term)
        if removed:
            text = f"Removed “{shown}”: it no longer applies, from the next request on."
        else:
            text = f"This server has no term that reads like “{shown}”. `/moderation list` shows them."
        await send_ephemeral(interaction, text)

    @moderation.command(name="list")
    async def list_(self, interaction: discord.Interaction) -> None:
        """Show which categories are on here, this server's own terms and the log channel."""
        config = await self.store.list_config(interaction.guild_id)
        await interaction.response.send_message(embed=config_embed(config), ephemeral=True)

    @moderation.command(name="test")
    @app_commands.describe(text="A prompt to check; nothing is generated or recorded")
    async def test(self, interaction: discord.Interaction, text: str) -> None:
        """Show what the filter sees in a prompt under this server's rules, and why."""
        if self.store.ai is not None:  # the AI moderator's answer may take longer than Discord waits
            await interaction.response.defer(ephemeral=True, thinking=True)
        explanation = await self.store.explain(interaction.guild_id, text)
        await send_embed(interaction, explanation_embed(explanation))

    @moderation.command(name="category")
    @app_commands.describe(name="The category", enabled="On (blocked here) or off")
    @app_commands.choices(name=CATEGORY_CHOICES)
    async def category(self, interaction: discord.Interaction, name: app_commands.Choice[str], enabled: bool) -> None:
        """Switch an optional category on or off in this server (csam is always on)."""
        assert interaction.guild_id is not None
        try:
            await self.store.set_category(interaction.guild_id, name.value, enabled, by=interaction.user.id)
        except BotError as exc:
            await send_ephemeral(interaction, user_message(exc).text)
            return
        state = "on: prompts in it are refused here" if enabled else "off: prompts in it are no longer refused here"
        await send_ephemeral(interaction, f"**{_category(name.value)}** is now {state}.")

    @moderation.command(name="log")
    @app_commands.describe(user="Only this member's blocks", limit=f"How many, newest first (1-{MAX_LOG_ROWS})")
    async def log_(
        self,
        interaction: discord.Interaction,
        user: discord.User | None = None,
        limit: app_commands.Range[int, 1, MAX_LOG_ROWS] = 10,
    ) -> None:
        """Show recent blocked prompts here, by this server's rules and by the image model's filter."""
        entries = await self.store.log(interaction.guild_id, limit, user_id=user.id if user else None)
        await interaction.response.send_message(embed=log_embed(entries, user), ephemeral=True)

    @moderation.command(name="logchannel")
    @app_commands.describe(channel="Where to post each blocked prompt (leave empty to stop posting)")
    async def logchannel(self, interaction: discord.Interaction, channel: discord.TextChannel | None = None) -> None:
        """Set or clear the channel where the bot posts each blocked prompt."""
        assert interaction.guild_id is not None
        if channel is not None:
            can = channel.permissions_for(channel.guild.me)
            if not (can.view_channel and can.send_messages and can.embed_links):
                await send_ephemeral(
                    interaction,
                    f"I can't post in {channel.mention}: I need View Channel, Send Messages and Embed Links there.",
                )
                return
        await self.store.set_log_channel(interaction.guild_id, channel.id if channel else None)
        if channel is None:
            text = "Blocked prompts are no longer posted to a channel (`/moderation log` still lists them)."
        else:
            text = f"Each blocked prompt will be posted in {channel.mention}."
        await send_ephemeral(interaction, text)

    @moderation.command(name="lift")
    @app_commands.describe(user="The member whose cool-down ends now")
    async def lift(self, interaction: discord.Interaction, user: discord.User) -> None:
        """End a member's cool-down after repeated blocked prompts."""
        lifted = await self.store.lift_cooldown(interaction.guild_id, user.id)
        # A cool-down follows the member everywhere, but only the server where it began can lift it.
        still = await self.store.active_cooldown(user.id)
        if lifted and still is None:
            text = f"{user.mention} can generate again; their earlier blocks no longer count toward a cool-down."
        elif lifted:
            text = f"{user.mention}'s cool-down from here is lifted; one that began outside this server still applies."
        else:
            text = f"{user.mention} has no cool-down that began in this server."
        await send_ephemeral(interaction, text)


async def send_embed(interaction: discord.Interaction, embed: discord.Embed) -> None:
    """An ephemeral answer, or the followup of a deferred one."""
    if interaction.response.is_done():
        await interaction.followup.send(embed=embed, ephemeral=True)
    else:
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(ModerationCog(bot))
