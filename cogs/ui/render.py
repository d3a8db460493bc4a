"""How results, progress and quota look in Discord. Pure functions of core values plus discord objects."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from collections.abc import Sequence
from typing import Any

import discord

from bot.editing.images import ImageWorkers, fit_to_limit
from bot.models import Progress, RequestKind, Reservation
from bot.pipeline import Delivery
from cogs.ui.views import result_view
from cogs.ui.wording import escape, quota_headline

ACCENT = discord.Colour(0x4285F4)
# Discord's upload limit in DMs and servers without boosts: the smallest a channel has.
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024


def clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fit_lines(lines: Sequence[str], limit: int) -> str:
    """All lines if they fit in `limit` characters; else as many whole lines as fit with a last line saying
    how many were left out."""
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        if size + len(line) + 1 + len(f"… and {len(lines) - i - 1} more") > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join([*kept, f"… and {len(lines) - len(kept)} more"])


def quota_line(reservation: Reservation) -> str:
    """ "4 credits · 6 of 10 left today · resets …": what the picture cost and where the member stands."""
    return quota_headline(reservation.remaining, reservation.limit, reservation.resets_at, spent=reservation.credits)


def progress_text(progress: Progress, *, now: float | None = None) -> str:
    """What a waiting message says. The estimated start is a Discord timestamp (`now` is the unix time the
    estimate was made): the reader's client counts it down by itself, so the bot edits only when it moves."""
    if progress.state == "generating":
        return "🎨 Generating your image…"
    if progress.position == 0:
        return "⏳ In line for the image model…"
    ahead = "you're next" if progress.position <= 1 else f"position {progress.position} in line"
    eta = ""
    if progress.eta_seconds is not None:
        if progress.eta_seconds < 1:
            eta = " · starting any moment"
        else:
            at = (time.time() if now is None else now) + progress.eta_seconds
            eta = f" · should start <t:{round(at)}:R>"
    return f"⏳ Waiting for the image model — {ahead}{eta}"


async def fit_delivery(delivery: Delivery, size_limit: int, images: ImageWorkers | None = None) -> Delivery:
    """`delivery` with its image re-encoded to fit `size_limit`, off the event loop (a 4K picture takes a
    second or more of CPU), in the bounded image workers when given, noting the original's size and type;
    unchanged when it already fits."""
    image = delivery.image
    if len(image.data) <= size_limit:
        return delivery
    if images is not None:
        data, mime_type = await images.run(fit_to_limit, image.data, image.mime_type, size_limit)
    else:
        data, mime_type = await asyncio.to_thread(fit_to_limit, image.data, image.mime_type, size_limit)
    resized = dataclasses.replace(image, data=data, mime_type=mime_type)
    return dataclasses.replace(delivery, image=resized, resized_from=(len(image.data), image.mime_type))


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def resize_note(delivery: Delivery, size_limit: int) -> str:
    """Says that the picture shown is a smaller re-encoding, and why."""
    if delivery.resized_from is None:
        return ""
    size, mime = delivery.resized_from
    kind = mime.removeprefix("image/").upper()
    return (
        f"\n📉 The original ({delivery.request.options.size or 'full size'} {kind}, {_mb(size)}) is over this "
        f"channel's {_mb(size_limit)} upload limit, so this is a {_mb(len(delivery.image.data))} JPEG of it."
    )


def result_message(delivery: Delivery, requester: discord.abc.User, size_limit: int = 0) -> dict[str, Any]:
    """The keyword arguments (content, embed, file, view) of a message that shows a delivered image (already
    fitted to the channel's upload limit `size_limit` by `fit_delivery`)."""
    image = delivery.image
    # The file is named by what its bytes are (the provider judged them; a declared type can be wrong).
    filename = f"gemini-{delivery.generation_id}.{image.extension}"
    request = delivery.request
    # The prompt and the model's words are shown as typed: nothing in them may turn into markup or a masked link.
    if request.kind is RequestKind.RENDER and request.history:
        # A re-render's own instruction is the bot's: show the picture's prompt and what was done to it.
        described = f"**{clip(escape(request.history[-1]), 3900)}**\n🔍 Re-rendered at {request.options.size}"
    else:
        described = f"**{clip(escape(request.prompt), 4000)}**"
    embed = discord.Embed(description=described, colour=ACCENT)
    embed.set_author(name=clip(f"Requested by {requester.display_name}", 256))
    if image.text:
        embed.add_field(name="The model says", value=clip(escape(image.text), 1024), inline=False)
    options = delivery.request.options
    footer = " · ".join(p for p in (delivery.model_name, options.size, image.model) if p)
    if image.fallback:  # the first provider failed or was skipped: say who made it, by the name users read
        footer += f" · via {image.provider_label or image.provider}"
    if delivery.depth:
        footer += f" · edit {delivery.depth} of a chain"
        # Each ancestor contributes one instruction, so fewer means the oldest were left out.
        sent = len(delivery.request.history)
        if sent < delivery.depth:
            footer += f" · ✂️ only the last {sent} instructions were sent as context"
    if delivery.turns:
        footer += (
            f" · 🧠 edited with the model's memory of {delivery.turns} earlier step{'s' if delivery.turns > 1 else ''}"
        )
    embed.set_footer(text=clip(footer, 2048))
    embed.set_image(url=f"attachment://{filename}")
    file = discord.File(io.BytesIO(image.data), filename=filename)
    view = result_view(delivery.generation_id, delivery.larger_sizes)
    content = quota_line(delivery.reservation) + resize_note(delivery, size_limit)
    return {"content": content, "embed": embed, "file": file, "view": view}
