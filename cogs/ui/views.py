"""Every persistent button: Reroll, Edit, Delete and the 2K / 4K re-renders under each result, and Cancel under
a waiting request.

They survive restarts: each is a `DynamicItem` whose custom_id carries what it acts on (`gib:<action>:<id>`,
`gib:render:<size>:<id>`, `gib:cancel:<key>:<user>`), registered once in the bot's `setup_hook`
(`PERSISTENT_ITEMS`), and everything else is read when it is pressed. The editing cog does the work of the
result buttons (it sets `bot.result_actions`); this module only draws and routes.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Protocol, cast

import discord

from bot.errors import NotAllowed
from cogs.ui.common import send_ephemeral
from cogs.ui.wording import user_message

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

# action -> (label, emoji, style)
ACTIONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "reroll": ("Reroll", "🔁", discord.ButtonStyle.secondary),
    "edit": ("Edit", "✏️", discord.ButtonStyle.secondary),
    "delete": ("Delete", "🗑️", discord.ButtonStyle.danger),
}
TOO_LATE = "This request is no longer waiting (it has started or already ended), so it can't be cancelled."


class ResultActions(Protocol):
    async def on_result_button(
        self, interaction: discord.Interaction, action: str, generation_id: int, size: str | None = None
    ) -> None: ...


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
        handler = cast("ImageBot", interaction.client).result_actions
        try:
            if handler is None:
                raise RuntimeError("no cog handles result buttons (the editing extension is not loaded)")
            await handler.on_result_button(interaction, self.action, self.generation_id)
        except Exception as exc:  # the user always hears something; discord.py would only log it
            log.error("%s button for generation %s failed", self.action, self.generation_id, exc_info=exc)
            await send_ephemeral(interaction, user_message(exc).text)


class RenderButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=re.compile(r"gib:render:(?P<size>2K|4K):(?P<id>[0-9]{1,20})"),
):
    """Makes the same picture again at a larger size, as the presser's own request (charged by its credits)."""

    def __init__(self, size: str, generation_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=size,
                emoji="🔍",
                style=discord.ButtonStyle.secondary,
                custom_id=f"gib:render:{size}:{generation_id}",
            )
        )
        self.size = size
        self.generation_id = generation_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[discord.ui.View], match: re.Match[str]
    ) -> RenderButton:
        return cls(match["size"], int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        handler = cast("ImageBot", interaction.client).result_actions
        try:
            if handler is None:
                raise RuntimeError("no cog handles result buttons (the editing extension is not loaded)")
            await handler.on_result_button(interaction, "render", self.generation_id, self.size)
        except Exception as exc:
            log.error("render %s button for generation %s failed", self.size, self.generation_id, exc_info=exc)
            await send_ephemeral(interaction, user_message(exc).text)


def result_view(generation_id: int, render_sizes: tuple[str, ...] = ()) -> discord.ui.View:
    """The buttons shown under a delivered image (one row: Reroll, Edit, Delete and up to two re-render sizes).
    Who may press what is decided at click time from the database."""
    view = discord.ui.View(timeout=None)
    for action in ACTIONS:
        view.add_item(ResultButton(action, generation_id))
    for size in render_sizes[:2]:
        view.add_item(RenderButton(size, generation_id))
    return view


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=re.compile(r"gib:cancel:(?P<key>[0-9]{1,20}):(?P<user>[0-9]{1,20})"),
):
    """Cancels a waiting request. The custom_id carries the request's scheduler key and the requester, so a
    press is judged without any state (and still answered after a restart, when nothing is waiting any more)."""

    def __init__(self, key: str, requester_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                emoji="✖️",
                style=discord.ButtonStyle.secondary,
                custom_id=f"gib:cancel:{key}:{requester_id}",
            )
        )
        self.key = key
        self.requester_id = requester_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[discord.ui.View], match: re.Match[str]
    ) -> CancelButton:
        return cls(match["key"], int(match["user"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        if interaction.user.id != self.requester_id and not interaction.permissions.manage_messages:
            await send_ephemeral(interaction, user_message(NotAllowed("cancel")).text)
            return
        bot = cast("ImageBot", interaction.client)
        if not bot.services.scheduler.cancel(self.key):
            await send_ephemeral(interaction, TOO_LATE)
            return
        # The request's own job now edits the message to say it was cancelled and not charged.
        log.info("request %s cancelled by user %s", self.key, interaction.user.id)
        try:
            await interaction.response.defer()
        except discord.HTTPException as exc:
            log.info("could not acknowledge the cancel of %s: %s", self.key, exc)


def cancel_view(key: str, requester_id: int) -> discord.ui.View | None:
    """The Cancel button for a waiting request, or None when its key cannot go into a custom_id."""
    if not key.isdigit() or len(key) > 20:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(key, requester_id))
    return view


# Registered once, in `ImageBot.setup_hook`: a press on any of them, even from before a restart, is answered.
PERSISTENT_ITEMS: tuple[type[discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]]], ...] = (
    ResultButton,
    RenderButton,
    CancelButton,
)
