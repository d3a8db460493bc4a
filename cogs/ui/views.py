"""Every persistent button: Reroll, Edit, Delete and the 2K / 4K re-renders under each result, Cancel under a
waiting request, and Appeal under a block by the AI moderator.

They survive restarts: each is a `DynamicItem` whose custom_id carries what it acts on (`gib:<action>:<id>`,
`gib:render:<size>:<id>`, `gib:cancel:<key>:<user>`, `gib:appeal:<block>:<user>`), registered once in the bot's
`setup_hook` (`PERSISTENT_ITEMS`), and everything else is read when it is pressed. The editing cog does the work
of the result buttons (it sets `bot.result_actions`), the moderation store decides appeals; this module only
draws and routes.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Protocol, cast

import discord

from bot.errors import BotError, ModerationBlocked, NotAllowed
from cogs.ui.common import send_ephemeral
from cogs.ui.wording import appeal_text, user_message

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
# A button whose custom_id names something other than what the message it sits on shows (only a modified
# client can press one): it acts on nothing.
NOT_ON_THIS = "This button doesn't belong to this message, so it does nothing."
NOT_YOUR_BLOCK = "Only the member whose prompt was blocked can appeal it."


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
        await press_result(interaction, self.action, self.generation_id)


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
        await press_result(interaction, "render", self.generation_id, self.size)


async def press_result(
    interaction: discord.Interaction, action: str, generation_id: int, size: str | None = None
) -> None:
    """A result button's press, handed to the editing cog (`bot.result_actions`)."""
    handler = cast("ImageBot", interaction.client).result_actions
    try:
        if handler is None:
            raise RuntimeError("no cog handles result buttons (the editing extension is not loaded)")
        await handler.on_result_button(interaction, action, generation_id, size)
    except Exception as exc:  # the user always hears something; discord.py would only log it
        name = action if size is None else f"{action} {size}"
        log.error("%s button for generation %s failed", name, generation_id, exc_info=exc)
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
        bot = cast("ImageBot", interaction.client)
        scheduler = bot.services.scheduler
        ticket = scheduler.find(self.key)
        if ticket is None or not ticket.cancellable:
            await send_ephemeral(interaction, TOO_LATE)
            return
        # Judged by the request itself, not by what the custom_id claims: its requester, or a moderator of the
        # server it was made in.
        moderator = interaction.permissions.manage_messages and ticket.guild_id == interaction.guild_id
        if interaction.user.id != ticket.user_id and not (moderator and ticket.guild_id is not None):
            await send_ephemeral(interaction, user_message(NotAllowed("cancel")).text)
            return
        if ticket.user_id != self.requester_id or not shows_request(interaction.message, self.key):
            await send_ephemeral(interaction, NOT_ON_THIS)
            return
        if not scheduler.cancel(self.key):
            await send_ephemeral(interaction, TOO_LATE)
            return
        # The request's own job now edits the message to say it was cancelled and not charged.
        log.info("request %s cancelled by user %s", self.key, interaction.user.id)
        try:
            await interaction.response.defer()
        except discord.HTTPException as exc:
            log.info("could not acknowledge the cancel of %s: %s", self.key, exc)


def shows_request(message: discord.Message | None, key: str) -> bool:
    """Whether `message` is the one that shows the request with this scheduler key: the response to the
    interaction `key` (`cogs.ui.flow.run_interaction`), or the reply to the message `key` (`run_message`)."""
    if message is None:
        return False
    metadata = message.interaction_metadata
    reference = message.reference
    return (metadata is not None and str(metadata.id) == key) or (
        reference is not None and str(reference.message_id) == key
    )


def cancel_view(key: str, requester_id: int) -> discord.ui.View | None:
    """The Cancel button for a waiting request, or None when its key cannot go into a custom_id."""
    if not key.isdigit() or len(key) > 20:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(key, requester_id))
    return view


class AppealButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=re.compile(r"gib:appeal:(?P<block>[0-9]{1,20}):(?P<user>[0-9]{1,20})"),
):
    """Appeals a block by the AI moderator (`Moderation.appeal`); the custom_id carries the recorded block and
    the member it blocked. The answer is private: the appeal model may take a few seconds, so it is deferred."""

    def __init__(self, block_id: int, user_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Appeal",
                emoji="⚖️",
                style=discord.ButtonStyle.secondary,
                custom_id=f"gib:appeal:{block_id}:{user_id}",
            )
        )
        self.block_id = block_id
        self.user_id = user_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[discord.ui.View], match: re.Match[str]
    ) -> AppealButton:
        return cls(int(match["block"]), int(match["user"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        if interaction.user.id != self.user_id:
            await send_ephemeral(interaction, NOT_YOUR_BLOCK)
            return
        moderation = cast("ImageBot", interaction.client).services.moderation
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            result = await moderation.appeal(interaction.guild_id, self.user_id, self.block_id)
        except BotError as exc:  # not on record, already appealed, no appeals left today
            await send_ephemeral(interaction, user_message(exc).text)
            return
        except Exception as exc:  # the member always hears something; discord.py would only log it
            log.error("the appeal of moderation block %s failed", self.block_id, exc_info=exc)
            await send_ephemeral(interaction, user_message(exc).text)
            return
        await send_ephemeral(interaction, appeal_text(result))


def appeal_view(exc: BaseException, user_id: int) -> discord.ui.View | None:
    """The Appeal button under `user_id`'s refusal, when it is a block they may appeal (the AI moderator's)."""
    if not isinstance(exc, ModerationBlocked) or exc.appeal_id is None:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(AppealButton(exc.appeal_id, user_id))
    return view


# Registered once, in `ImageBot.setup_hook`: a press on any of them, even from before a restart, is answered.
PERSISTENT_ITEMS: tuple[type[discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]]], ...] = (
    ResultButton,
    RenderButton,
    CancelButton,
    AppealButton,
)
