"""`/privacy export` and `/privacy forget`: a member sees everything the bot keeps about them, or has it removed.

Both answer only the member (ephemeral). Forgetting asks first, with a button, and says what went and what
stays: the core (`bot.ops.privacy`) removes their prompts, input records and moderation texts from every table in
one transaction and keeps only anonymous counts, plus their id on today's ledger entries until the day ends (or
forgetting would reset today's limit). Pictures already posted in Discord are messages in channels, not the
bot's records: the message says to delete them first if they should go too.
"""

from __future__ import annotations

import copy
import io
import json
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.ops.privacy import ForgetReport
from cogs.ui.common import send_ephemeral

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

CONFIRM_SECONDS = 300
ASK = (
    "**Forget me?** The bot will delete, everywhere it keeps them: the prompts and instructions you wrote, where "
    "your input images came from (and the images, if it keeps them), the model's answers to you, and the text of "
    "your blocked prompts. What stays has no words of yours: counts of images and their cost (each server's "
    "spend), and your id on today's entries until the day ends, so today's limits still hold.\n"
    "Pictures already posted stay in their channels: delete them first with their 🗑️ button if they should go "
    "too (afterwards the bot no longer knows they were yours). This cannot be undone."
)
KEPT = "Nothing was deleted."


def forgotten_text(report: ForgetReport) -> str:
    parts = [
        f"{report.generations} request{'s' if report.generations != 1 else ''} (now without your words)",
        f"{report.inputs} input image record{'s' if report.inputs != 1 else ''}",
        f"{report.moderation_anonymised} moderation record{'s' if report.moderation_anonymised != 1 else ''}",
    ]
    text = "🧹 Done. Forgotten: " + ", ".join(parts) + "."
    if report.ledger_kept_today or report.moderation_kept_for_cooldown:
        text += (
            " Your id stays on today's entries until the day ends (today's limits and any cool-down still "
            "apply); then it goes too."
        )
    return text


def without_bytes(data: dict[str, Any]) -> dict[str, Any]:
    """The export with stored images and the model's kept answers (which hold its picture) replaced by their size,
    for when the whole would not fit in a file."""
    slim = copy.deepcopy(data)
    for row in slim.get("generation_inputs", []):
        stored = row.get("data")
        if isinstance(stored, dict) and "base64" in stored:
            row["data"] = {"omitted_base64_chars": len(stored["base64"])}
    for row in slim.get("generation_turns", []):
        if isinstance(row.get("content"), str):
            row["content"] = {"omitted_chars": len(row["content"])}
    return slim


class ForgetView(discord.ui.View):
    def __init__(self, cog: PrivacyCog, user_id: int) -> None:
        super().__init__(timeout=CONFIRM_SECONDS)
        self.cog = cog
        self.user_id = user_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id  # ephemeral: nobody else sees it anyway

    @discord.ui.button(label="Forget me", style=discord.ButtonStyle.danger, emoji="🧹")
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[ForgetView]) -> None:
        self.stop()
        report = await self.cog.bot.services.forget_member(self.user_id)
        await interaction.response.edit_message(content=forgotten_text(report), view=None)

    @discord.ui.button(label="Keep my data", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button[ForgetView]) -> None:
        self.stop()
        await interaction.response.edit_message(content=KEPT, view=None)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[ForgetView]
    ) -> None:
        log.error("forgetting user %s failed", self.user_id, exc_info=error)
        await send_ephemeral(interaction, "Forgetting failed on our side; nothing was changed. Please try again.")


class PrivacyCog(commands.Cog):
    privacy = app_commands.Group(
        name="privacy", description="What the bot keeps about you: see it, or have it forgotten"
    )

    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot

    @privacy.command(name="export")
    async def export(self, interaction: discord.Interaction) -> None:
        """Get everything the bot keeps about you as a JSON file (only you see it)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await self.bot.services.export_member(interaction.user.id)
        body = json.dumps(data, indent=1, ensure_ascii=False).encode()
        note = ""
        if len(body) > interaction.filesize_limit:
            body = json.dumps(without_bytes(data), indent=1, ensure_ascii=False).encode()
            note = (
                " Your stored images and the model's kept answers were too large for one file, so the export gives"
                " their sizes only."
            )
        counts = ", ".join(f"{len(rows)} {name}" for name, rows in data.items() if isinstance(rows, list) and rows)
        file = discord.File(io.BytesIO(body), filename=f"my-data-{interaction.user.id}.json")
        text = f"📦 Everything the bot keeps about you: {counts or 'nothing at all'}.{note}"
        await interaction.followup.send(text, file=file, ephemeral=True)

    @privacy.command(name="forget")
    async def forget(self, interaction: discord.Interaction) -> None:
        """Have the bot delete what you wrote and sent (asks first)."""
        view = ForgetView(self, interaction.user.id)
        await interaction.response.send_message(ASK, view=view, ephemeral=True)


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(PrivacyCog(bot))
