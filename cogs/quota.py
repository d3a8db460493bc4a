"""`/quota` for everyone, `/quota-admin` for server admins: where a member stands today, and the controls.

The numbers come from `bot.quota.QuotaLedger`, the same ledger that decides, so what a member reads is what the
next request will meet; the headline is the same line a delivered image carries (`cogs.ui.wording.footer_text`).
Role limits depend on the member's roles, so every status is asked for with them (`cogs.ui.common.role_ids`).

Every admin subcommand needs Manage Server (hidden from other members and checked again on the bot's side, see
`cogs.ui.checks`), answers ephemerally with the resulting state, and is audited by the core. Limits take -1 for
unlimited; `clear: True` removes a setting so the next source in line applies (see `bot.quota.limits`). Bad
values are refused by the core (`InvalidRequest`) and shown as it words them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import BotError, InvalidRequest
from bot.providers.config import GOOGLE
from bot.quota.ledger import QuotaLedger
from bot.quota.limits import MAX_LIMIT, AuditEntry, ProviderSpend, QuotaStatus, ServerQuota, Spend, to_limit
from cogs.ui.checks import ManageGuildGroup
from cogs.ui.common import role_ids, send_ephemeral
from cogs.ui.render import fit_lines
from cogs.ui.wording import credits, footer_text, source_text, user_message

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

COLOUR, WARNING = discord.Colour(0x4285F4), discord.Colour(0xF29900)
FIELD_LIMIT = 1024  # Discord: embed field value
MAX_AUDIT_ROWS = 25  # 25 lines of about 120 characters stay far below an embed description's 4096
PRECEDENCE = "Which limit applies: member's own › most generous role › server default › global default."
LIMIT_HELP = f"Credits per day, 0-{MAX_LIMIT}; -1 = unlimited (the bot's operator may cap both)"

# --- rendering (pure) ---------------------------------------------------------------------------------------


def limit_text(limit: int | None) -> str:
    return "unlimited" if limit is None else f"{credits(limit)} a day"


def status_embed(status: QuotaStatus, *, title: str, timezone: str, notes: tuple[str, ...] = ()) -> discord.Embed:
    """One member's day in credits: the line their images carry, then the parts it is made of."""
    lines = [f"**{footer_text(status)}**"]
    if not status.guild_id:
        lines.append("Outside servers the bot's own limit applies, counted apart from every server.")
    lines.append("Each picture costs credits by model and size (`/models` shows the prices).")
    embed = discord.Embed(title=title, description="\n".join([*lines, *notes]), colour=WARNING if notes else COLOUR)
    embed.add_field(name="Used", value=str(status.used))
    embed.add_field(name="In progress", value=str(status.reserved))
    embed.add_field(name="Left", value="unlimited" if status.left is None else str(status.left))
    embed.add_field(name="Daily limit", value=f"{limit_text(status.limit)} · {source_text(status)}", inline=False)
    if status.everywhere_cap is not None:
        embed.add_field(
            name="Across all servers and DMs",
            value=f"{status.everywhere_used} of {status.everywhere_cap} credits used (the bot's cap per member)",
            inline=False,
        )
    if status.attempts_cap is not None:
        embed.add_field(name="Calls to the image model", value=f"{status.attempts} of {status.attempts_cap} today")
    embed.add_field(name="Refunded today", value=f"{status.refunded} (failed or cancelled requests cost nothing)")
    reset = int(status.resets_at)
    embed.add_field(name="Resets", value=f"<t:{reset}:f> (<t:{reset}:R>)")
    embed.set_footer(text=f"Quota day {status.day} ({timezone})")
    return embed


def budget_notes(ledger: QuotaLedger, server: Spend | None, whole: Spend) -> tuple[str, ...]:
    """Why a member with images left may still be refused today."""
    notes = []
    if server is not None and ledger.budget_reached(server):
        notes.append(f"⚠️ This server's daily image budget is used up; it resets <t:{int(server.resets_at)}:R>.")
    if ledger.budget_reached(whole):
        notes.append(f"⚠️ The bot's daily image budget is used up; it resets <t:{int(whole.resets_at)}:R>.")
    return tuple(notes)


def spend_text(spend: Spend) -> str:
    images = f"{spend.images} image{'s' if spend.images != 1 else ''}"
    if spend.image_cap is not None:
        images += f" of {spend.image_cap}"
    cost = f"${spend.cost_usd:.3f}"
    if spend.cost_cap_usd is not None:
        cost += f" of ${spend.cost_cap_usd:.2f}"
    return f"{images} · {cost}"


def provider_lines(
    parts: ProviderSpend, provider_name: Callable[[str], str], model_name: Callable[[str], str]
) -> list[str]:
    """Where a day's dollars went: each provider and model with its pictures, the failed calls it may bill and the
    moderation model's checks, then what running requests hold and what no provider is on record for."""
    lines = []
    for line in parts.lines:
        what = [f"{line.pictures} picture{'s' if line.pictures != 1 else ''}"] if line.pictures else []
        if line.failed:
            what.append(f"{line.failed} failed call{'s' if line.failed != 1 else ''} it may bill")
        if line.checks:
            what.append(f"{line.checks} moderation check{'s' if line.checks != 1 else ''}")
        who = provider_name(line.provider) if line.provider else "a call cut off by a restart"
        lines.append(f"• {who} · {model_name(line.model)}: {', '.join(what)} · ${line.cost_usd:.4f}")
    if parts.open_requests:
        n = parts.open_requests
        lines.append(f"• running now: {n} request{'s' if n != 1 else ''}, ${parts.open_usd:.4f} estimated")
    if parts.other_usd > 0:
        lines.append(f"• no provider on record (refunded at a restart, or older): ${parts.other_usd:.4f}")
    return lines


def spend_embed(
    ledger: QuotaLedger,
    server: Spend,
    whole: Spend | None,
    *,
    server_parts: Sequence[str] = (),
    whole_parts: Sequence[str] = (),
) -> discord.Embed:
    """Today's spend of the server and, for the bot's owner, of the whole bot, with the caps, and where it went
    (`*_parts`: `provider_lines`)."""
    embed = discord.Embed(title="Spending today", colour=COLOUR)
    for name, spend, parts in (("This server", server, server_parts), ("The whole bot", whole, whole_parts)):
        if spend is not None:
            reached = " · ⚠️ cap reached" if ledger.budget_reached(spend) else ""
            head = spend_text(spend) + reached
            body = fit_lines(parts, FIELD_LIMIT - len(head) - 1) if parts else ""
            embed.add_field(name=name, value=f"{head}\n{body}" if body else head, inline=False)
    reset = int(server.resets_at)
    embed.add_field(name="Resets", value=f"<t:{reset}:f> (<t:{reset}:R>)", inline=False)
    embed.set_footer(
        text="Real cost once answered: Google's token counts, a gateway's reported cost, else its configured price "
        "(estimates while running). Requests refunded to members still count when the provider may have billed "
        "them (answers without a picture, timeouts)."
    )
    return embed


def server_embed(server: ServerQuota) -> discord.Embed:
    embed = discord.Embed(title="Quotas in this server", colour=COLOUR)
    embed.add_field(
        name="Default limit", value=f"{limit_text(server.default_limit)} · {server.default_source}", inline=False
    )
    roles = [f"<@&{role}>: {limit_text(limit)}" for role, limit in server.role_limits.items()]
    embed.add_field(
        name=f"Role limits ({len(roles)})", value=fit_lines(roles, FIELD_LIMIT) if roles else "none", inline=False
    )
    embed.add_field(name="Spending today", value=spend_text(server.spend), inline=False)
    embed.set_footer(text=PRECEDENCE)
    return embed


def audit_line(entry: AuditEntry) -> str:
    user, role, value = f"<@{entry.user_id}>", f"<@&{entry.role_id}>", entry.value
    limit = limit_text(None if value is None else to_limit(value))
    match entry.action:
        case "set_user_limit":
            what = f"removed {user}'s own limit" if value is None else f"set {user}'s limit to {limit}"
        case "grant":
            what = f"granted {user} {value} more for that day"
        case "reset_user":
            what = f"reset {user}'s day ({value} forgiven)"
        case "set_server_default":
            what = "removed the server default" if value is None else f"set the server default to {limit}"
        case "set_role_limit":
            what = f"removed {role}'s limit" if value is None else f"set {role}'s limit to {limit}"
        case "set_model_default":
            what = f"set the default model and size to {entry.detail}"
        case "set_model_access":
            whom = "everyone" if entry.role_id is None else role
            what = f"set what {whom} may use: {entry.detail}"
        case other:
            what = other
    return f"<t:{int(entry.at)}:f> <@{entry.actor_id}> {what}"


def chosen_limit(limit: int | None, clear: bool, what: str) -> int | None:
    """The limit to store (None: remove the setting). Forgetting the value is an error, never a silent clear."""
    if clear and limit is not None:
        raise InvalidRequest("Give either a `limit` or `clear: True`, not both.")
    if not clear and limit is None:
        raise InvalidRequest(f"Give a `limit` (0-{MAX_LIMIT}, or -1 for unlimited), or `clear: True` to remove {what}.")
    return limit


# --- the cog ------------------------------------------------------------------------------------------------


class QuotaCog(commands.Cog):
    admin = ManageGuildGroup(name="quota-admin", description="Daily credits and spending here (Manage Server)")

    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot

    @property
    def ledger(self) -> QuotaLedger:
        return self.bot.services.quota

    def _status_embed(self, status: QuotaStatus, title: str, notes: tuple[str, ...] = ()) -> discord.Embed:
        return status_embed(status, title=title, timezone=self.bot.settings.quota_timezone, notes=notes)

    @app_commands.command(name="quota")
    async def quota(self, interaction: discord.Interaction) -> None:
        """See how many credits you have left today, where your limit comes from and when it resets."""
        guild_id = interaction.guild_id
        status = await self.ledger.status(interaction.user.id, guild_id, role_ids(interaction.user))
        server = await self.ledger.spend(guild_id) if guild_id else None
        notes = budget_notes(self.ledger, server, await self.ledger.spend(None))
        embed = self._status_embed(status, "Your credits today", notes)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    def _member_embed(self, status: QuotaStatus, member: discord.Member) -> discord.Embed:
        return self._status_embed(status, f"{member.display_name}'s credits today")

    async def _reply(
        self, interaction: discord.Interaction, change: Callable[[], Awaitable[tuple[str | None, discord.Embed]]]
    ) -> None:
        """Run an admin change and answer with the state it left, or with why it was refused (nothing changed)."""
        try:
            text, embed = await change()
        except BotError as exc:
            await send_ephemeral(interaction, user_message(exc).text)
            return
        await interaction.response.send_message(text, embed=embed, ephemeral=True)

    @admin.command(name="set")
    @app_commands.describe(
        user="The member", limit=LIMIT_HELP, clear="True: remove their own limit, so roles or the server default apply"
    )
    async def set_(
        self, interaction: discord.Interaction, user: discord.Member, limit: int | None = None, clear: bool = False
    ) -> None:
        """Set one member's daily credits here (it beats roles and the server default), or clear it."""
        assert interaction.guild_id is not None  # the group is guild-only
        guild_id = interaction.guild_id

        async def change() -> tuple[str, discord.Embed]:
            value = chosen_limit(limit, clear, "their own limit")
            status = await self.ledger.set_user_limit(
                guild_id, user.id, value, actor_id=interaction.user.id, role_ids=role_ids(user)
            )
            if value is None:
                text = f"Removed {user.mention}'s own limit: their roles or the server default apply now."
            else:
                text = f"{user.mention}'s daily limit here is now {limit_text(to_limit(value))}."
            return text, self._member_embed(status, user)

        await self._reply(interaction, change)

    @admin.command(name="grant")
    @app_commands.describe(user="The member", amount=f"Extra credits for today only (1-{MAX_LIMIT})")
    async def grant(self, interaction: discord.Interaction, user: discord.Member, amount: int) -> None:
        """Give a member extra credits for today only, on top of their limit."""
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id

        async def change() -> tuple[str, discord.Embed]:
            status = await self.ledger.grant(
                guild_id, user.id, amount, actor_id=interaction.user.id, role_ids=role_ids(user)
            )
            text = f"Granted {user.mention} {amount} more credit{'s' if amount != 1 else ''} for today."
            if status.limit is None:
                text += " Their limit is unlimited, so this changes nothing for now."
            return text, self._member_embed(status, user)

        await self._reply(interaction, change)

    @admin.command(name="reset")
    @app_commands.describe(user="The member whose credits spent today stop counting")
    async def reset(self, interaction: discord.Interaction, user: discord.Member) -> None:
        """Forgive the credits a member spent today, so their full limit is back."""
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id

        async def change() -> tuple[str, discord.Embed]:
            status = await self.ledger.reset_user(
                guild_id, user.id, actor_id=interaction.user.id, role_ids=role_ids(user)
            )
            text = (
                f"Reset {user.mention}'s day: the credits they spent today no longer count against them "
                "(they still count toward this server's spending)."
            )
            return text, self._member_embed(status, user)

        await self._reply(interaction, change)

    @admin.command(name="default")
    @app_commands.describe(
        limit=LIMIT_HELP, clear="True: remove the server default, so the bot's global default applies"
    )
    async def default(self, interaction: discord.Interaction, limit: int | None = None, clear: bool = False) -> None:
        """Set the daily credits of members here with no role limit or own limit, or clear it."""
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id

        async def change() -> tuple[str, discord.Embed]:
            value = chosen_limit(limit, clear, "the server default")
            server = await self.ledger.set_server_default(guild_id, value, actor_id=interaction.user.id)
            if value is None:
                text = "Removed the server default: the bot's global default applies now."
            else:
                text = f"The server default is now {limit_text(to_limit(value))}."
            return text, server_embed(server)

        await self._reply(interaction, change)

    @admin.command(name="role")
    @app_commands.describe(role="The role", limit=LIMIT_HELP, clear="True: remove this role's limit")
    async def role(
        self, interaction: discord.Interaction, role: discord.Role, limit: int | None = None, clear: bool = False
    ) -> None:
        """Set the daily credits of a role (members get their most generous role's), or clear it."""
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id

        async def change() -> tuple[str, discord.Embed]:
            if role.is_default():
                # Every member has @everyone and the most generous role wins: it would cancel every lower role.
                raise InvalidRequest(
                    "@everyone can't have a role limit (it would outrank every lower role limit); "
                    "use `/quota-admin default` for everyone's limit."
                )
            value = chosen_limit(limit, clear, "this role's limit")
            server = await self.ledger.set_role_limit(guild_id, role.id, value, actor_id=interaction.user.id)
            if value is None:
                text = f"Removed {role.mention}'s limit."
            else:
                text = f"{role.mention}'s daily limit is now {limit_text(to_limit(value))}."
            return text, server_embed(server)

        await self._reply(interaction, change)

    @admin.command(name="show")
    @app_commands.describe(user="The member")
    async def show(self, interaction: discord.Interaction, user: discord.Member) -> None:
        """See where a member stands today and where their limit comes from."""
        assert interaction.guild_id is not None
        status = await self.ledger.status(user.id, interaction.guild_id, role_ids(user))
        await interaction.response.send_message(embed=self._member_embed(status, user), ephemeral=True)

    @admin.command(name="spend")
    async def spend(self, interaction: discord.Interaction) -> None:
        """See today's images and their real cost here (the bot's owner also sees the whole bot's)."""
        server = await self.ledger.spend(interaction.guild_id)
        whole = await self.ledger.spend(None)
        # Other servers' usage and the operator's budget are the operator's business.
        shown = whole if await self.bot.is_owner(interaction.user) else None
        services = self.bot.services
        # The moderation model is Google's even when PROVIDERS leaves Google out.
        labels = {GOOGLE: "Google"} | {m.name: m.label for m in services.provider.members}

        async def parts(guild_id: int | None) -> list[str]:
            spend = await self.ledger.spend_by_provider(guild_id)
            return provider_lines(spend, lambda n: labels.get(n, n), lambda m: services.registry.get(m).name)

        embed = spend_embed(
            self.ledger,
            server,
            shown,
            server_parts=await parts(interaction.guild_id),
            whole_parts=await parts(None) if shown is not None else (),
        )
        if shown is None and self.ledger.budget_reached(whole):
            embed.description = "⚠️ The bot's overall daily budget is used up: nobody can generate until it resets."
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @admin.command(name="log")
    @app_commands.describe(limit=f"How many changes, newest first (1-{MAX_AUDIT_ROWS})")
    async def log_(
        self, interaction: discord.Interaction, limit: app_commands.Range[int, 1, MAX_AUDIT_ROWS] = 10
    ) -> None:
        """See who changed quotas here, and what."""
        assert interaction.guild_id is not None
        entries = await self.ledger.audit_log(interaction.guild_id, limit)
        body = "\n".join(audit_line(entry) for entry in entries) or "No quota changes recorded."
        embed = discord.Embed(title="Recent quota changes", description=body, colour=COLOUR)
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(QuotaCog(bot))
