"""Placeholder: filled in by the quota feature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord.ext import commands

if TYPE_CHECKING:
    from bot.app import ImageBot


class QuotaCog(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(QuotaCog(bot))
