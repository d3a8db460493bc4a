"""The relax lane's part of the one lifecycle (`bot.pipeline.Pipeline` mixes it in): whether a refused request
could run in relax mode instead, handing a relax request to the lane, giving its place back, and carrying on a
relax request an earlier run accepted (`resume`). Kept apart so that the lifecycle reads on its own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bot.editing.generations import InputSource
from bot.errors import QuotaExceeded, RelaxUnavailable
from bot.models import Context, GeneratedImage, ImageRequest, Reservation
from bot.ports import Accepted, Delivery, Door, Plan, Planner, Scheduler
from bot.relax.lane import RelaxLane
from bot.relax.store import RelaxJob


class RelaxSteps:
    relax: RelaxLane | None
    planner: Planner
    scheduler: Scheduler[Any]

    if TYPE_CHECKING:

        def _enter(self) -> None: ...
        def _leave(self) -> None: ...
        async def _generate(
            self,
            request: ImageRequest,
            accepted: Accepted,
            door: Door,
            sources: Sequence[InputSource],
            context: Context | None,
            *,
            started: tuple[int, int] | None = None,
        ) -> Delivery: ...

    def _relax_possible(self, request: ImageRequest) -> None:
        """Refuse a relax request the relax lane cannot take (no Gemini provider, relax off, an edit)."""
        if request.relax:
            refusal = RelaxUnavailable("off") if self.relax is None else self.relax.unavailable(request)
            if refusal is not None:
                raise refusal

    def _admit(self, request: ImageRequest, key: str) -> Any:
        if request.relax and self.relax is not None:
            return self.relax.admit(request.user_id, key, guild_id=request.guild_id)
        return self.scheduler.admit(request.user_id, key, guild_id=request.guild_id)

    def _release_ticket(self, request: ImageRequest, ticket: Any) -> None:
        if request.relax and self.relax is not None:
            self.relax.release(ticket)
        else:
            self.scheduler.release(ticket)

    def _release(self, accepted: Accepted) -> None:
        self._release_ticket(accepted.request, accepted.ticket)

    def _note_relax_price(self, exc: BaseException, plan: Plan) -> None:
        """A member out of credits: what the same picture would cost in relax mode, for a door that offers it."""
        if isinstance(exc, QuotaExceeded) and exc.lane == "fast":
            size = plan.request.options.size or plan.spec.default_size
            exc.relax_credits = self.planner.registry.price(plan.spec, size, "flex").credits

    def offers_relax(self, request: ImageRequest, exc: BaseException) -> bool:
        """Whether a request refused because the member is out of credits could run in relax mode instead: relax
        is available for it and the member's relax allowance can pay for it."""
        if not isinstance(exc, QuotaExceeded) or exc.lane != "fast" or exc.relax_credits is None:
            return False
        if request.relax or self.relax is None or self.relax.unavailable(request) is not None:
            return False
        return exc.relax_left is None or exc.relax_left >= exc.relax_credits

    async def resume(self, job: RelaxJob, door: Door) -> Delivery | None:
        """Carry on a relax request an earlier run accepted (its reservation is still open, its job stored), from
        where it stood. Ends like `serve`: delivered, or refunded and told through `door`."""
        relax = self.relax
        assert relax is not None, "relax jobs are resumed through a pipeline with a relax lane"
        request = job.request
        registry = self.planner.registry
        spec = registry.get(request.options.model or job.model)
        price = registry.price(spec, request.options.size or spec.default_size, "flex")
        reservation = Reservation(job.entry_id, request.user_id, request.guild_id, None, None, 0, price.credits)
        ticket = relax.admit(request.user_id, job.key, guild_id=request.guild_id, force=True)
        accepted = Accepted(request, ticket, reservation, spec, price, None, job.key, job)
        self._enter()
        try:
            try:
                return await self._generate(request, accepted, door, (), None, started=(job.generation_id, 0))
            except Exception as exc:  # Suspended too: the door says the request carries on after the restart
                await door.fail(exc)
                return None
        finally:
            self._release(accepted)
            self._leave()

    async def _relax(
        self,
        request: ImageRequest,
        accepted: Accepted,
        generation_id: int,
        door: Door,
        on_call: Callable[[], None],
    ) -> GeneratedImage:
        """The relax lane makes the picture (written down first, so that a restart resumes it)."""
        if self.relax is None:
            raise RelaxUnavailable("gateways-only")
        job = accepted.job or await self.relax.register(
            accepted.key, generation_id, accepted.reservation.id, request, accepted.spec.id
        )
        return await self.relax.run(job, accepted.ticket, door.progress, price=accepted.price, on_call=on_call)
