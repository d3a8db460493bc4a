"""What a relax image costs: the one function the ledger and the offer ask.

Google bills Flex and Batch at half the standard price (shared/reference/gemini-api.md, "Relax lane"), so a relax
image costs half the credits of the same image made at once, rounded up to whole credits, taken from the relax
allowance (RELAX_DAILY_QUOTA), and half the estimated dollars in the spending caps.

Today every image costs one credit (`standard_credits`), so a relax image costs one relax credit and half the
dollars. When the model registry prices each model and size per tier, this function reads its flex/batch price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.models import ImageRequest

# Flex and Batch bill this share of the standard price.
RELAX_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class RelaxPrice:
    credits: int  # taken from the member's relax allowance
    usd: float  # estimated, for the spending caps (the real cost replaces it once the picture is delivered)


def relax_price(request: ImageRequest, *, standard_usd: float, standard_credits: int = 1) -> RelaxPrice:
    """The price of `request` in relax mode, given what the same image costs at standard speed. (Every request
    costs the same today; the registry will price the request's model and size.)"""
    return RelaxPrice(credits=max(1, math.ceil(standard_credits * RELAX_SHARE)), usd=standard_usd * RELAX_SHARE)
