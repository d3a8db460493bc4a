"""What the pipeline (`bot.pipeline`) needs of each service and of each door, and the values it hands them.

The services implement these structurally (`QuotaLedger` is a `Quota`, `Scheduler` a `Scheduler`, ...); doors on
the Discord side implement `Door`. Kept apart from the lifecycle so that the lifecycle reads on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bot.editing.generations import Generation, InputSource
from bot.errors import BotError, ImageBlocked, PromptBlocked
from bot.models import Cost, GeneratedImage, ImageOptions, ImageRequest, Price, Progress, Reservation
from bot.providers.registry import ModelRegistry, ModelSpec

T = TypeVar("T")
ProgressCallback = Callable[[Progress], Awaitable[None]]
# Shows the image to the user; returns the id of the message that shows it (0 when there is none, e.g. CLI).
Deliver = Callable[["Delivery"], Awaitable[int]]
# Fetches and judges the request's input images (after the door showed the request, so it is answered in time).
Loader = Callable[[], Awaitable[Sequence[InputSource]]]


class Moderator(Protocol):
    async def check(self, request: ImageRequest) -> None:
        """Raise `ModerationBlocked` or `CoolingDown`, or return to let the request through."""

    async def second_opinion(self, request: ImageRequest) -> None:
        """The slower check (a model's), once the user was answered and the input images are loaded: raise
        `ModerationBlocked` or return."""

    async def record_upstream_block(self, request: ImageRequest, exc: PromptBlocked | ImageBlocked) -> None:
        """Audit a refusal by the provider's own filter (Google's or a gateway's: `exc.provider_label`)."""


class Quota(Protocol):
    async def reserve(self, request: ImageRequest, price: Price | None = None) -> Reservation:
        """Hold the price or raise `QuotaExceeded` / `AttemptsExhausted` / `BudgetExhausted`."""

    def attempt(self, reservation: Reservation) -> None:
        """One more upstream call is made for this request (recorded without holding it up)."""

    async def commit(
        self, reservation: Reservation, generation_id: int, cost_usd: float, costs: Sequence[Cost] = ()
    ) -> bool:
        """Count the credits as spent and the real cost in the spend (`costs`: per provider); False if the
        reservation had already ended."""

    async def refund(
        self, reservation: Reservation, reason: str, billed_usd: float = 0.0, costs: Sequence[Cost] = ()
    ) -> bool:
        """Give the credits back, recording why and what the upstream may bill anyway (`costs`: per provider);
        False if the reservation had already ended."""

    async def current(self, reservation: Reservation, request: ImageRequest) -> Reservation:
        """The held unit with the user's numbers as they stand now, for what the result shows."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A request with its model and size chosen, what the model is, and what the request costs."""

    request: ImageRequest
    spec: ModelSpec
    price: Price


class Planner(Protocol):
    registry: ModelRegistry

    async def plan(self, request: ImageRequest, original: ImageOptions | None = None) -> Plan:
        """Choose the request's model, size and ratio and price it, or raise `ChoiceRefused`."""


# A user's admitted place at the scheduler, held from admission until released (queued or running); only the
# scheduler looks inside it.
TicketT = TypeVar("TicketT")


class Scheduler(Protocol[TicketT]):
    def admit(self, user_id: int, key: str, *, guild_id: int | None = None) -> TicketT:
        """Take one of the user's pending slots at once, or raise `QueueFull`, `BotBusy`, `ShuttingDown` or
        `CircuitOpen`. `guild_id` (None: a DM) is whose turn it waits for: servers take turns, then members.
        Synchronous so that no other request can slip in between the check and the count."""

    async def run(self, ticket: TicketT, job: Callable[[], Awaitable[T]], progress: ProgressCallback | None) -> T:
        """Wait until the upstream gate allows a start (reporting position through `progress`), then run one
        attempt of `job`. Called once per attempt, so retries go back through the gate. Raises `Cancelled` if
        `cancel(key)` was called while waiting."""

    def cancel(self, key: str) -> bool:
        """Cancel a waiting request; False when it is not waiting (unknown, running or finished)."""

    def release(self, ticket: TicketT) -> None:
        """Give the user's slot back; called exactly once per admitted ticket, however the request ended."""


class Door(Protocol):
    """How one request talks to its user (an interaction, a message, the CLI). The pipeline calls these; a door
    never touches the reservation."""

    async def refused(self, exc: BotError) -> None:
        """The request was refused before anything was spent."""

    async def show(self) -> bool:
        """Tell the user the request is in line; False when that is impossible (it is then refunded)."""

    async def progress(self, progress: Progress) -> None:
        """The request's place in line, or that it started."""

    async def deliver(self, delivery: Delivery) -> int:
        """Show the image; returns the id of the message that shows it (0 when there is none)."""

    async def fail(self, exc: Exception) -> None:
        """Tell the user how the request ended (it was refunded)."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A request that passed every check and holds a scheduler slot and a quota reservation."""

    request: ImageRequest
    ticket: Any
    reservation: Reservation
    spec: ModelSpec
    price: Price
    parent: Generation | None  # the picture it edits or re-renders


@dataclass(frozen=True, slots=True)
class Delivery:
    generation_id: int
    request: ImageRequest
    image: GeneratedImage
    reservation: Reservation
    depth: int  # how many edits deep this result is (0 for a fresh image)
    model_name: str = ""  # the friendly name of the model it was asked of
    turns: int = 0  # earlier answers of the model sent back with it (multi-turn edit)
    larger_sizes: tuple[str, ...] = ()  # what the picture can be re-rendered at (the 2K / 4K buttons)
    # Set by the door when it had to re-encode the picture to fit the channel: the original's bytes and type.
    resized_from: tuple[int, str] | None = None


class RaisingDoor:
    """The CLI's door: nothing to show; the ending is kept for `Pipeline.run` to raise."""

    def __init__(self, deliver: Deliver, progress: ProgressCallback | None) -> None:
        self._deliver = deliver
        self._progress = progress
        self.error: Exception | None = None

    async def refused(self, exc: BotError) -> None:
        self.error = exc

    async def show(self) -> bool:
        return True

    async def progress(self, progress: Progress) -> None:
        if self._progress is not None:
            await self._progress(progress)

    async def deliver(self, delivery: Delivery) -> int:
        return await self._deliver(delivery)

    async def fail(self, exc: Exception) -> None:
        self.error = exc
