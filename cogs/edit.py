"""Editing pictures: `/edit`, the "Edit image" message menu, replies and thread messages, and the buttons under
every result (Reroll, Edit, Delete). All of them go through the same pipeline as `/imagine`.

Who may press what: Reroll and Edit are open to everyone who sees the picture and run as the presser's own
request (their quota, their moderation record), as replying to a picture is; Delete is for the requester and for
members who can manage messages.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.editing.conversation import RENDER_INSTRUCTION
from bot.editing.generations import Generation
from bot.editing.inputs import INPUTS_NOT_KEPT
from bot.errors import BotError, InvalidRequest, NotAllowed
from bot.models import ImageOptions, RequestKind
from cogs.ui.common import send_ephemeral
from cogs.ui.flow import interaction_request, run_interaction
from cogs.ui.inputs import Pending, download, precheck, refetch, source_images
from cogs.ui.messages import handle_message
from cogs.ui.places import check_interaction
from cogs.ui.views import NOT_ON_THIS
from cogs.ui.wording import user_message

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)

GONE = "That picture is no longer available, so its buttons don't work any more."
PROMPT_GONE = (
    "The words behind this picture are no longer kept (its author had the bot forget them with `/privacy forget`, "
    "or they passed the bot's retention period), so it can't be rerolled or edited from here."
)
MODAL_TIMEOUT = 15 * 60  # an open modal is kept in memory this long; Discord's own tokens last as long

Submit = Callable[[discord.Interaction, str], Awaitable[None]]


class InstructionModal(discord.ui.Modal):
    """Asks what to change; `submit` gets the answer."""

    def __init__(self, submit: Submit, *, max_chars: int) -> None:
        super().__init__(title="Edit image", timeout=MODAL_TIMEOUT)
        self.instruction: discord.ui.TextInput[InstructionModal] = discord.ui.TextInput(
            label="What should change?",
            style=discord.TextStyle.paragraph,
            placeholder="e.g. make it night, add a red umbrella, turn it into a watercolour",
            max_length=min(max_chars, 4000),
            custom_id="instruction",
        )
        self.add_item(self.instruction)
        self._submit = submit

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._submit(interaction, self.instruction.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        log.error("edit modal failed", exc_info=error)
        await send_ephemeral(interaction, user_message(error).text)


class EditCog(commands.Cog):
    def __init__(self, bot: ImageBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Edit image", callback=self.edit_image_menu)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        self.bot.result_actions = self

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        if self.bot.result_actions is self:
            self.bot.result_actions = None

    # --- doors -----------------------------------------------------------------------------------------

    @app_commands.command(name="edit")
    @app_commands.describe(
        image="The picture to change",
        instruction="What to change, in your own words",
        image2="A second picture to combine with the first",
        image3="A third picture to combine",
    )
    async def edit(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        instruction: str,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
    ) -> None:
        """Change a picture, or combine up to three, by telling Gemini what to do."""
        uploads = [Pending(a) for a in (image, image2, image3) if a is not None]
        await self._edit(interaction, instruction, uploads, parent_id=None)

    async def edit_image_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        if not await check_interaction(self.bot, interaction):  # before the modal: no instruction typed in vain
            return
        # Interactions carry the target message whole, whatever the message-content intent.
        try:
            pending = source_images(message)
            precheck(pending, self.bot.settings)
        except BotError as exc:
            await send_ephemeral(interaction, user_message(exc).text)
            return

        async def submit(modal: discord.Interaction, instruction: str) -> None:
            parent = await self.bot.services.generations.by_message(message.id)
            await self._edit(modal, instruction, pending, parent_id=parent.id if parent else None)

        await interaction.response.send_modal(InstructionModal(submit, max_chars=self.bot.settings.prompt_max_chars))

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        await handle_message(self.bot, message)

    # A result deleted by hand (or purged) is never the "latest picture" of a thread again.
    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.bot.services.generations.mark_deleted(payload.message_id)

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        store = self.bot.services.generations
        for message_id in payload.message_ids:
            await store.mark_deleted(message_id)

    async def _edit(
        self, interaction: discord.Interaction, instruction: str, pending: Sequence[Pending], *, parent_id: int | None
    ) -> None:
        settings = self.bot.settings
        try:
            precheck(pending, settings)
        except BotError as exc:
            await send_ephemeral(interaction, user_message(exc).text)
            return
        request = interaction_request(interaction, instruction, RequestKind.EDIT, parent_id=parent_id)
        judge = self.bot.services.inputs
        await run_interaction(self.bot, interaction, request, lambda: download(pending, judge))

    # --- buttons under results (cogs.ui.views routes them here) -------------------------------------------

    async def on_result_button(
        self, interaction: discord.Interaction, action: str, generation_id: int, size: str | None = None
    ) -> None:
        generation = await self.bot.services.generations.get(generation_id)
        if generation is not None and generation.prompt_gone and action != "delete":
            await send_ephemeral(interaction, PROMPT_GONE)
        elif generation is None or not generation.shown:
            await send_ephemeral(interaction, GONE)
        elif interaction.message is None or interaction.message.id != generation.message_id:
            # The custom_id names another picture than the one this button is under: act on neither.
            await send_ephemeral(interaction, NOT_ON_THIS)
        elif action == "reroll":
            await self._reroll(interaction, generation)
        elif action == "edit":
            await self._open_edit(interaction, generation)
        elif action == "render" and size is not None:
            await self._render(interaction, generation, size)
        else:
            await self._delete(interaction, generation)

    async def _reroll(self, interaction: discord.Interaction, generation: Generation) -> None:
        """The same request again, as the presser's own: same prompt, options, context and input images."""
        settings = self.bot.settings
        sources = await self.bot.services.generations.inputs(generation.id)
        # Uploads to a command have no message to fetch them from again: refuse before anything starts.
        unavailable = any(s.image is None and s.message_id is None for s in sources)
        if unavailable or len(sources) < generation.input_count:
            await send_ephemeral(interaction, user_message(InvalidRequest(INPUTS_NOT_KEPT)).text)
            return
        request = interaction_request(
            interaction,
            generation.prompt,
            RequestKind.REROLL,
            channel_id=interaction.channel_id or generation.channel_id,
            parent_id=generation.parent_id,
            original_id=generation.id,  # its model, size and shape
        )
        judge = self.bot.services.inputs
        load = (lambda: refetch(self.bot, sources, settings, judge)) if sources else None
        await run_interaction(self.bot, interaction, request, load)

    async def _render(self, interaction: discord.Interaction, generation: Generation, size: str) -> None:
        """The same picture at a larger size, as the presser's own request: an edit of it with the model's own
        earlier answer where the core has it, else with the picture (read from this message) as input."""
        settings = self.bot.settings
        try:
            if interaction.message is None:
                raise InvalidRequest(GONE)
            pending = source_images(interaction.message)
            precheck(pending, settings)
        except BotError as exc:
            await send_ephemeral(interaction, user_message(exc).text)
            return
        request = interaction_request(
            interaction,
            RENDER_INSTRUCTION,
            RequestKind.RENDER,
            options=ImageOptions(size=size),
            parent_id=generation.id,
        )
        judge = self.bot.services.inputs
        await run_interaction(self.bot, interaction, request, lambda: download(pending, judge))

    async def _open_edit(self, interaction: discord.Interaction, generation: Generation) -> None:
        if not await check_interaction(self.bot, interaction):
            return
        message = interaction.message
        try:
            if message is None:
                raise InvalidRequest(GONE)
            pending = source_images(message)
        except BotError as exc:
            await send_ephemeral(interaction, user_message(exc).text)
            return

        async def submit(modal: discord.Interaction, instruction: str) -> None:
            await self._edit(modal, instruction, pending, parent_id=generation.id)

        await interaction.response.send_modal(InstructionModal(submit, max_chars=self.bot.settings.prompt_max_chars))

    async def _delete(self, interaction: discord.Interaction, generation: Generation) -> None:
        allowed = interaction.user.id == generation.user_id or interaction.permissions.manage_messages
        if not allowed or interaction.message is None:
            await send_ephemeral(interaction, user_message(NotAllowed("delete")).text)
            return
        await interaction.response.defer()  # the message itself disappears: nothing else to say
        # Marked first, so that no edit can pick the picture up while the message is going away.
        await self.bot.services.generations.mark_deleted(interaction.message.id)
        try:
            await interaction.message.delete()
        except discord.NotFound:
            pass  # deleted by someone else meanwhile
        log.info("user %s deleted generation %s", interaction.user.id, generation.id)


async def setup(bot: ImageBot) -> None:
    await bot.add_cog(EditCog(bot))
