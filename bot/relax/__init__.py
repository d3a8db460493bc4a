"""The relax lane: half-price pictures for work that can wait, made by Google's Flex tier or a Batch job.
`store` (the `relax_jobs` table: jobs survive a restart), `lane` (`RelaxLane`: its own scheduler, Flex, Batch,
polling, cancel, suspend), `values` (its timings, its upstream, a live job). What a relax picture costs is the
model registry's Flex price (`bot.providers.registry`, tier "flex"; Batch costs the same), chosen by the planner
like any other price."""

from bot.relax.lane import RelaxLane
from bot.relax.store import RelaxJob, RelaxJobs
from bot.relax.values import RelaxJobInfo, RelaxTimings, RelaxUpstream, flex_refused

__all__ = ["RelaxJob", "RelaxJobInfo", "RelaxJobs", "RelaxLane", "RelaxTimings", "RelaxUpstream", "flex_refused"]
