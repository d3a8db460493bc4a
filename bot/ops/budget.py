"""Budget alerts: tell an admin channel once when a day's spend reaches 80 % and 100 % of a cap.

Pure bookkeeping on the ledger's `Spend` values (images and dollars held or delivered today, with their caps);
the Discord side decides where the alert goes (the server's configured channel, `USAGE_ALERT_CHANNEL` for the
whole bot) and how it reads. Each (scope, day, cap, threshold) fires once per process; after a restart an alert
already sent may be sent once more, which is better than missing one.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.quota.limits import Spend

THRESHOLDS = (80, 100)  # percent of a cap


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    guild_id: int | None  # None: the whole bot's cap
    day: str
    cap: str  # "images" | "cost"
    threshold: int  # percent reached (the highest crossed)
    used: float
    limit: float

    @property
    def text(self) -> str:
        whose = "The bot's" if self.guild_id is None else "This server's"
        if self.cap == "images":
            amount = f"{self.used:.0f} of {self.limit:.0f} images"
        else:
            amount = f"${self.used:,.2f} of ${self.limit:,.2f}"
        state = "is used up" if self.threshold >= 100 else f"is {self.threshold} % used"
        return f"{whose} daily {'image' if self.cap == 'images' else 'cost'} cap {state} ({amount}, {self.day})."


def reached(used: float, cap: float | None, thresholds: tuple[int, ...] = THRESHOLDS) -> int | None:
    """The highest threshold `used` has reached, in percent of `cap` (None: no cap, or none reached)."""
    if cap is None or cap < 0:
        return None
    if cap == 0:
        return max(thresholds)  # a zero cap is used up from the start
    hit = [t for t in thresholds if used * 100 >= t * cap - 1e-9]
    return max(hit) if hit else None


class BudgetAlerts:
    def __init__(self, thresholds: tuple[int, ...] = THRESHOLDS) -> None:
        self.thresholds = thresholds
        self._sent: set[tuple[int | None, str, str, int]] = set()

    def check(self, spend: Spend) -> list[BudgetAlert]:
        """Alerts that became due with this spend and were not sent yet; call after each reserve or commit."""
        due = []
        for cap, used, limit in (
            ("images", float(spend.images), spend.image_cap),
            ("cost", spend.cost_usd, spend.cost_cap_usd),
        ):
            threshold = reached(used, limit, self.thresholds)
            if threshold is None or limit is None:
                continue
            key = (spend.guild_id, spend.day, cap, threshold)
            if key in self._sent:
                continue
            # Reaching 100 % at once also settles 80 %: one message, the one that matters.
            self._sent.update((spend.guild_id, spend.day, cap, t) for t in self.thresholds if t <= threshold)
            due.append(BudgetAlert(spend.guild_id, spend.day, cap, threshold, used, float(limit)))
        self._forget_old_days(spend.day)
        return due

    def _forget_old_days(self, today: str) -> None:
        if len(self._sent) > 1000:
            self._sent = {key for key in self._sent if key[1] >= today}
