"""The relax lane: half-price pictures for work that can wait, made by Google's Flex tier or a Batch job.
`pricing` (what a relax image costs; the ledger asks it too), `store` (the `relax_jobs` table: jobs survive a
restart), `lane` (`RelaxLane`: its own scheduler, Flex, Batch, polling, cancel, suspend)."""

from bot.relax.lane import RelaxJobInfo, RelaxLane, RelaxTimings, RelaxUpstream, flex_refused
from bot.relax.pricing import RelaxPrice, relax_price
from bot.relax.store import RelaxJob, RelaxJobs

__all__ = [
    "RelaxJob",
    "RelaxJobInfo",
    "RelaxJobs",
    "RelaxLane",
    "RelaxPrice",
    "RelaxTimings",
    "RelaxUpstream",
    "flex_refused",
    "relax_price",
]
