"""Buttons on every result: Reroll, Edit, Delete.

They survive restarts: each button is a `DynamicItem` whose custom_id carries the generation id
(`gib:<action>:<id>`), registered once with `bot.add_dynamic_items`, and everything else is read from SQLite
when it is pressed. The editing cog does the work (`ResultActions`); this module only draws and routes.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

import discord

from cogs.ui.common import send_ephemeral
from cogs.ui.wording import user_message

log = logging.getLogger(__name__)

# action -> (label, emoji, style)
ACTIONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "reroll": ("Reroll", "🔁", discord.ButtonStyle.secondary),
    "edit": ("Edit", "✏️", discord.ButtonStyle.secondary),
    "delete": ("Delete", "🗑️", discord.ButtonStyle.danger),
}
HANDLER_COG = "EditCog"


class ResultActions(Protocol):
    async def on_result_button(self, interaction: discord.Interaction, action: str, generation_id: int) -> None: ...


class ResultButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=re.compile(r"gib:(?P<action>reroll|edit|delete):(?P<id>[0-9]{1,20})"),
):
    def __init__(self, action: str, generation_id: int) -> None:
        label, emoji, style = ACTIONS[action]
        button: discord.ui.Button[discord.ui.View] = discord.ui.Button(
            label=label, emoji=emoji, style=style, custom_id=f"gib:{action}:{generation_id}"
        )
        super().__init__(button)
        self.action = action
        self.generation_id = generation_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[discord.ui.View], match: re.Match[str]
    ) -> ResultButton:
        return cls(match["action"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        handler: ResultActions | None = interaction.client.get_cog(HANDLER_COG)  # type: ignore[attr-defined]
        try:
            if handler is None:
                raise RuntimeError(f"the {HANDLER_COG} cog that handles result buttons is not loaded")
            await handler.on_result_button(interaction, self.action, self.generation_id)
        except Exception as exc:  # the user always hears something; discord.py would only log it
            log.error("%s button for generation %s failed", self.action, self.generation_id, exc_info=exc)
            await send_ephemeral(interaction, user_message(exc).text)


def result_view(generation_id: int) -> discord.ui.View:
    """The buttons shown under a delivered image. Who may press what is decided at click time from the database."""
    view = discord.ui.View(timeout=None)
    for action in ACTIONS:
        view.add_item(ResultButton(action, generation_id))
    return view
