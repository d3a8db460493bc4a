"""The upstream scheduler: a fair queue (`fairqueue`) in front of the gate (`gate`: sliding window from
`ratelimit`, concurrency, budgets, 429 pause, `circuit` breaker), run by `scheduler.Scheduler`."""

from bot.scheduler.gate import Gate, SchedulerStats
from bot.scheduler.scheduler import Scheduler, ShutdownReport, Ticket

__all__ = ["Gate", "Scheduler", "SchedulerStats", "ShutdownReport", "Ticket"]
