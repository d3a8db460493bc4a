"""Handing any request (/imagine, an edit, a Reroll, a reply) to the one pipeline, from an interaction or a message.

A door builds its `ImageRequest` with `request_for` and calls `run_interaction` or `run_message`; the pipeline
does the rest (`bot.pipeline.Pipeline.serve`): checks, showing the request in line, downloading and judging the
input images (after accepting, so an interaction is always answered within Discord's 3 seconds), generating, and
refunding on every ending that is not a delivery. The job objects (`cogs.ui.jobs`, `cogs.ui.message_jobs`) are
the pipeline's `Door`: they say what happens, in Discord. A relax request gets a `cogs.ui.relax.RelaxDoor`; a
member out of credits is offered to queue the same request in relax mode (`relax_offer`).

Every door passes here, so this is where each request gets its log request id (`bot.ops.logs`), where the
server's rules on where the bot may be used are checked for interactions (messages are checked as they arrive,
`cogs.ui.messages`), and where the budget alerts are looked at after the request ended.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import discord

from bot.errors import BotError, QuotaExceeded
from bot.models import ImageOptions, ImageRequest, RequestKind, as_relax
from bot.ops.logs import current_request_id, request_context
from bot.pipeline import Delivery, Loader
from cogs.ui.common import role_ids
from cogs.ui.jobs import InteractionJob, Offer
from cogs.ui.message_jobs import MessageJob
from cogs.ui.places import check_interaction
from cogs.ui.relax import RelaxDoor
from cogs.ui.render import DEFAULT_UPLOAD_LIMIT
from cogs.ui.views import offer_view
from cogs.ui.wording import relax_offer_text

if TYPE_CHECKING:
    from bot.app import ImageBot

log = logging.getLogger(__name__)


def request_for(
    user: discord.abc.User,
    *,
    channel_id: int | None,
    guild_id: int | None,
    prompt: str,
    kind: RequestKind,
    options: ImageOptions | None = None,
    parent_id: int | None = None,
    original_id: int | None = None,
) -> ImageRequest:
    """The one way a door turns who asked, where and what into a request (the pipeline adds the history)."""
    return ImageRequest(
        user_id=user.id,
        channel_id=channel_id or 0,
        guild_id=guild_id,
        prompt=prompt,
        kind=kind,
        options=options or ImageOptions(),
        parent_id=parent_id,
        role_ids=role_ids(user),
        original_id=original_id,
    )


def interaction_request(
    interaction: discord.Interaction, prompt: str, kind: RequestKind, **fields: Any
) -> ImageRequest:
    """`request_for` the member who used a command, menu, modal or button, where they used it."""
    fields.setdefault("channel_id", interaction.channel_id)
    return request_for(interaction.user, guild_id=interaction.guild_id, prompt=prompt, kind=kind, **fields)


async def run_interaction(
    bot: ImageBot, interaction: discord.Interaction, request: ImageRequest, load: Loader | None = None
) -> Delivery | None:
    """A slash command, context menu, modal or button: refusals are ephemeral, the rest shows publicly."""
    key = str(interaction.id)
    with request_context(current_request_id()):
        if not await check_interaction(bot, interaction):
            return None
        door: RelaxDoor | InteractionJob
        if request.relax:
            door = RelaxDoor.for_interaction(bot, interaction, key)
        else:
            door = InteractionJob(
                interaction,
                edit_interval=bot.settings.progress_edit_interval_seconds,
                images=bot.services.images,
                offer=relax_offer(bot, interaction, request, load),
            )
        try:
            return await bot.services.pipeline.serve(request, door, key=key, load=load)
        finally:
            await bot.budget.after_request(request.guild_id)


def relax_offer(bot: ImageBot, interaction: discord.Interaction, request: ImageRequest, load: Loader | None) -> Offer:
    """A member out of credits is offered to queue the same request in relax mode, when relax can take it and
    their relax allowance can pay for it; pressing the button runs it as their answer to that press."""

    def offer(exc: BotError) -> tuple[str, discord.ui.View] | None:
        if (
            load is not None
            or not isinstance(exc, QuotaExceeded)
            or not bot.services.pipeline.offers_relax(request, exc)
        ):
            return None
        assert exc.relax_credits is not None
        key = str(interaction.id)

        async def run(press: discord.Interaction) -> None:
            relaxed = dataclasses.replace(as_relax(request), channel_id=press.channel_id or request.channel_id)
            await run_interaction(bot, press, relaxed)

        bot.relax_offers.add(key, request.user_id, run)
        return relax_offer_text(exc, exc.relax_credits), offer_view(key, request.user_id)

    return offer


async def run_message(bot: ImageBot, message: discord.Message, request: ImageRequest, load: Loader) -> Delivery | None:
    """A reply or a thread message: everything, refusals included, is answered as a reply to it. The place was
    checked when the message arrived."""
    with request_context(current_request_id()):
        job = MessageJob(
            message,
            edit_interval=bot.settings.progress_edit_interval_seconds,
            size_limit=upload_limit(message),
            images=bot.services.images,
            lanes=bot.channel_lanes,
            me=bot.user,
        )
        try:
            return await bot.services.pipeline.serve(request, job, key=str(message.id), load=load)
        finally:
            await bot.budget.after_request(request.guild_id)


def upload_limit(message: discord.Message) -> int:
    return message.guild.filesize_limit if message.guild else DEFAULT_UPLOAD_LIMIT
