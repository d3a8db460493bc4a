"""Relax requests in Discord: the door that carries one (`RelaxDoor`), and the offer of relax mode to a member who
is out of credits (`OfferBook`, pressed through `cogs.ui.views.RelaxOfferButton`).

A relax request can take hours, far past the interaction's 15-minute token, and may finish after a restart, so
its picture (or how it ended) is always posted as a new message in the channel where it was asked for, with the
bot's token, mentioning the member. While the token lives, the interaction's own message shows where the request
stands, with a Cancel button that works at every stage (also after a restart: it names the request's key).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bot.errors import BotError, Suspended
from bot.models import Progress
from bot.pipeline import Delivery
from bot.relax import RelaxJob
from cogs.ui.common import send_ephemeral
from cogs.ui.jobs import INVALID_WEBHOOK_TOKEN, TOKEN_LIFETIME_SECONDS, ProgressMessage, interaction_age
from cogs.ui.render import DEFAULT_UPLOAD_LIMIT, fit_delivery, relax_progress_text, result_message
from cogs.ui.views import cancel_view
from cogs.ui.wording import user_message

if TYPE_CHECKING:
    from bot.app import ImageBot
    from bot.scheduler.ratelimit import Clock

log = logging.getLogger(__name__)

# An offer is answered by the same member soon or not at all; one kept longer would hold a request in memory.
OFFER_LIFETIME_SECONDS = 15 * 60
EXPIRED_OFFER = (
    "This offer has expired (or the bot restarted since). Use `/imagine` with `relax: True` to queue a picture in "
    "relax mode."
)


class RelaxDoor(ProgressMessage):
    """The pipeline's `Door` for a relax request: from an interaction (`for_interaction`), or resumed after a
    restart from its stored job (`resumed`), when there is no interaction left to answer."""

    def __init__(
        self,
        bot: ImageBot,
        *,
        key: str,
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        interaction: discord.Interaction | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            edit_interval=bot.settings.progress_edit_interval_seconds,
            clock=clock,
            cancel=cancel_view(key, user_id),
            images=bot.services.images,
        )
        self.bot = bot
        self.user_id = user_id
        self.channel_id = channel_id
        self.guild_id = guild_id
        self.interaction = interaction
        age = interaction_age(interaction) if interaction is not None else TOKEN_LIFETIME_SECONDS
        self._deadline = self.clock.monotonic() + TOKEN_LIFETIME_SECONDS - age
        self._expired = interaction is None

    @classmethod
    def for_interaction(cls, bot: ImageBot, interaction: discord.Interaction, key: str) -> RelaxDoor:
        return cls(
            bot,
            key=key,
            user_id=interaction.user.id,
            channel_id=interaction.channel_id or 0,
            guild_id=interaction.guild_id,
            interaction=interaction,
        )

    @classmethod
    def resumed(cls, bot: ImageBot, job: RelaxJob) -> RelaxDoor:
        request = job.request
        return cls(bot, key=job.key, user_id=request.user_id, channel_id=request.channel_id, guild_id=request.guild_id)

    # --- while it waits ---------------------------------------------------------------------------------

    async def refused(self, exc: BotError) -> None:
        if self.interaction is not None:
            await send_ephemeral(self.interaction, user_message(exc).text)

    async def show(self) -> bool:
        """Acknowledge the interaction and say the request is queued in relax mode (a resumed request was shown
        by the run that accepted it)."""
        if self.interaction is None:
            return True
        try:
            await self.interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:
            log.warning("could not defer interaction %s: %s", self.interaction.id, exc)
            return False
        self._pending = (Progress("queued"), self.clock.time())
        self._flush_task = asyncio.create_task(self._flush_later(0))
        return True

    @property
    def token_alive(self) -> bool:
        return not self._expired and self.clock.monotonic() < self._deadline

    def _can_edit(self) -> bool:
        return self.token_alive

    def _render(self, progress: Progress, at: float) -> tuple[str, discord.ui.View | None]:
        # A relax request can be cancelled at every stage, Flex and Batch included.
        return relax_progress_text(progress, now=at), self._cancel_view

    async def _edit_progress(self, content: str, view: discord.ui.View | None) -> None:
        assert self.interaction is not None
        try:
            await self.interaction.edit_original_response(content=content, view=view)
        except discord.HTTPException as exc:
            self._note_expiry(exc)
            raise

    # --- endings ----------------------------------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> int:
        """Post the picture as a new message that mentions the member; the waiting message then points to it."""
        await self._stop_progress()
        limit = self._upload_limit()
        delivery = await fit_delivery(delivery, limit, self.images)
        message = result_message(delivery, self._requester(), limit)
        message["content"] = f"<@{self.user_id}> your relax picture is ready. {message['content']}"
        # A new message in the channel: paced like every result there (`cogs.ui.lanes`), ahead of progress.
        async with self.bot.channel_lanes.result_write(self.channel_id, "create"):
            sent = await self._channel().send(allowed_mentions=self._mention(), **message)
        await self._edit_original(f"🐢 Done: your relax picture is here: {sent.jump_url}")
        return sent.id

    async def fail(self, exc: Exception) -> None:
        """Say how the request ended where the member asked while the token lives, else in the channel with a
        mention (an expired Batch job can end a day later)."""
        await self._stop_progress()
        if not isinstance(exc, BotError):
            log.error("relax request of user %s failed", self.user_id, exc_info=exc)
        text = user_message(exc, public=True).text
        if await self._edit_original(text, keep_cancel=isinstance(exc, Suspended)) or isinstance(exc, Suspended):
            return  # a restart is said only where the member is looking: the picture will still come
        try:
            async with self.bot.channel_lanes.result_write(self.channel_id, "create"):
                await self._channel().send(content=f"<@{self.user_id}> {text}", allowed_mentions=self._mention())
        except discord.HTTPException:
            log.warning("could not tell user %s how their relax request ended", self.user_id, exc_info=True)

    async def _edit_original(self, content: str, *, keep_cancel: bool = False) -> bool:
        if self.interaction is None or not self.token_alive:
            return False
        try:
            view = self._cancel_view if keep_cancel else None  # the Cancel button still works after the restart
            await self.interaction.edit_original_response(content=content, view=view)
        except discord.HTTPException as exc:
            self._note_expiry(exc)
            log.info("could not edit the relax message of interaction %s: %s", self.interaction.id, exc)
            return False
        return True

    def _note_expiry(self, exc: discord.HTTPException) -> None:
        if isinstance(exc, discord.NotFound) or exc.code == INVALID_WEBHOOK_TOKEN:
            self._expired = True

    def _channel(self) -> discord.PartialMessageable:
        # Only the channel's id is needed to post: this works after a restart, before any cache is filled.
        return self.bot.get_partial_messageable(self.channel_id, guild_id=self.guild_id)

    def _mention(self) -> discord.AllowedMentions:
        return discord.AllowedMentions(users=[discord.Object(self.user_id)])

    def _upload_limit(self) -> int:
        if self.interaction is not None:
            return self.interaction.filesize_limit
        guild = self.bot.get_guild(self.guild_id) if self.guild_id else None
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    def _requester(self) -> discord.abc.User | str:
        if self.interaction is not None:
            return self.interaction.user
        guild = self.bot.get_guild(self.guild_id) if self.guild_id else None
        member = guild.get_member(self.user_id) if guild is not None else None
        return member or self.bot.get_user(self.user_id) or "a member"


@dataclass(frozen=True, slots=True)
class Offer:
    user_id: int
    run: Callable[[discord.Interaction], Awaitable[None]]  # runs the offered request for the button's press
    expires_at: float  # monotonic seconds


class OfferBook:
    """Offers of relax mode made to members out of credits, by the key their button carries. Kept in memory: an
    offer is for now, and one pressed after a restart is answered with how to ask again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._offers: dict[str, Offer] = {}

    def add(self, key: str, user_id: int, run: Callable[[discord.Interaction], Awaitable[None]]) -> None:
        now = self.clock()
        self._offers = {k: o for k, o in self._offers.items() if o.expires_at > now}
        self._offers[key] = Offer(user_id, run, now + OFFER_LIFETIME_SECONDS)

    def owner(self, key: str, default: int) -> int:
        """The member the offer `key` was made to (`default` when it is no longer kept)."""
        offer = self._offers.get(key)
        return offer.user_id if offer is not None else default

    def take(self, key: str) -> Offer | None:
        """The offer `key`, once (a second press finds nothing)."""
        offer = self._offers.pop(key, None)
        return offer if offer is not None and offer.expires_at > self.clock() else None

    async def accept(self, interaction: discord.Interaction, key: str) -> None:
        """The member pressed the offer's button: their request runs in relax mode, answering this press."""
        offer = self.take(key)
        if offer is None:
            await send_ephemeral(interaction, EXPIRED_OFFER)
            return
        await offer.run(interaction)
