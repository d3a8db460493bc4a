"""A `Door` that passes everything on and keeps how the request ended, so `Pipeline.serve` counts each request
once in the metrics, with its outcome and the provider that made its picture, whatever door it came by."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import BotError
from bot.models import Progress
from bot.ops.metrics import outcome_of

if TYPE_CHECKING:
    from bot.ports import Delivery, Door


class MeteredDoor:
    def __init__(self, door: Door) -> None:
        self.door = door
        self.ending: BaseException | None = None
        self.delivered = False
        self.provider = ""  # who made the picture delivered
        self.model = ""  # with which of our models

    @property
    def outcome(self) -> str:
        if self.delivered:
            return outcome_of(None)
        return outcome_of(self.ending) if self.ending is not None else "internal"

    async def refused(self, exc: BotError) -> None:
        self.ending = exc
        await self.door.refused(exc)

    async def show(self) -> bool:
        return await self.door.show()

    async def progress(self, progress: Progress) -> None:
        await self.door.progress(progress)

    async def deliver(self, delivery: Delivery) -> int:
        message_id = await self.door.deliver(delivery)
        self.delivered, self.provider = True, delivery.image.provider
        self.model = delivery.request.options.model or ""
        return message_id

    async def fail(self, exc: Exception) -> None:
        self.ending = exc
        await self.door.fail(exc)
