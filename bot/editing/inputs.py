"""The rules for the images an edit starts from, on plain values, and what users read when one is refused.

Cheap checks run on an attachment's metadata before anything is downloaded (count, declared type and size);
the bytes are judged afterwards by `InputJudge` (`bot.editing.images.prepare_input` in the bounded image
workers), and the whole request by `check_request_size`. `InputRefusals` remembers each member's refused images,
so that someone who keeps sending images that cost a download and a decode for nothing is stopped before the
download.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bot.config import DEFAULTS
from bot.editing.conversation import provider_prompt
from bot.editing.images import (
    CONVERTIBLE,
    PASSTHROUGH,
    ImageWorkers,
    check_declared_size,
    check_request_size,
    prepare_input,
)
from bot.errors import ChoiceRefused, InvalidRequest, TooManyRefusedImages
from bot.models import Context, ImageRequest, InputImage, Turn

if TYPE_CHECKING:
    from bot.editing.generations import InputSource
    from bot.providers.registry import ModelSpec

ACCEPTED_TYPES = PASSTHROUGH | CONVERTIBLE
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")

NO_IMAGE = "That message has no image I can edit. Reply to one of the pictures (or use `/edit` with an upload)."
SOURCE_DELETED = "The picture you're editing was deleted, so there is nothing left to edit."
SOURCE_UNREADABLE = (
    "I can't see that message's images: Discord only shows them to me in messages that mention me (or when the "
    "operator enabled the message content intent). Use the **Edit image** menu on it, or `/edit` with the file."
)
NO_ACCESS = "I'm not allowed to read the channel that picture is in, so I can't fetch it."
NO_INSTRUCTION = "Tell me what to change: reply to the picture with an instruction such as “make it night”."
HOW_TO_EDIT = (
    "To change a picture, reply to it with what to change (or attach images to this message). "
    "To make a new one, use `/imagine`."
)
INPUTS_NOT_KEPT = (
    "The images this picture was made from were uploaded to a command, and this bot doesn't keep uploads, so it "
    "can't make it again. Use `/edit` with the files once more."
)
DOWNLOAD_FAILED = "I couldn't download the image from Discord. Please try again in a moment."


def looks_like_image(filename: str, content_type: str | None) -> bool:
    """Whether an attachment presents itself as a picture (its bytes are judged later)."""
    if content_type:
        return content_type.startswith("image/")
    return filename.lower().endswith(IMAGE_EXTENSIONS)


def check_declared(filename: str, content_type: str | None, size: int, max_bytes: int) -> None:
    """Refuse an attachment by what Discord says about it, before downloading it."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared and declared not in ACCEPTED_TYPES:
        raise InvalidRequest(f"“{filename}” is not a PNG, JPEG, WebP, GIF or BMP image.")
    check_declared_size(size, max_bytes, f"“{filename}”")


def check_count(count: int, limit: int) -> None:
    if count > limit:
        raise InvalidRequest(
            f"That's {count} images; I can work from at most {limit} at once. Please use fewer images."
        )


def with_images(request: ImageRequest, images: tuple[InputImage, ...], *, extra_bytes: int = 0) -> ImageRequest:
    """The request with its input images, refused if together (with `extra_bytes` of earlier turns sent along)
    they exceed what the upstream accepts."""
    updated = dataclasses.replace(request, images=images)
    check_request_size(provider_prompt(updated.prompt, updated.history), images, extra_bytes=extra_bytes)
    return updated


def with_sources(
    request: ImageRequest,
    model: ModelSpec,
    sources: Sequence[InputSource],
    turns: tuple[Turn, ...],
    parent_message: int | None,
) -> tuple[ImageRequest, Context | None]:
    """The request with the images to send, and the multi-turn context if there are turns. The parent's
    picture (`parent_message`: the message that shows it) is left out when the model's own turn that made it goes
    along (it is in there; a provider that cannot take turns gets it back from the context), and the model's
    input limit counts every picture."""
    if not turns:
        parent_message = None
    picture = next((s.image for s in sources if parent_message and s.message_id == parent_message), None)
    images = tuple(
        s.image for s in sources if s.image is not None and (parent_message is None or s.message_id != parent_message)
    )
    sent = len(images) + len(turns)
    if sent > model.max_inputs:
        raise ChoiceRefused("input images", str(sent), model=model.name, possible=(str(model.max_inputs),))
    request = with_images(request, images, extra_bytes=sum(len(t.answer) + len(t.prompt) for t in turns))
    if not turns:
        return request, None
    return request, Context(turns, provider_prompt(request.prompt, request.history), picture)


class InputJudge:
    """Judges one downloaded input image by its bytes, in the bounded image workers, with the bot's limits."""

    def __init__(
        self,
        workers: ImageWorkers,
        *,
        max_bytes: int = DEFAULTS.max_input_image_bytes,
        max_pixels: int = DEFAULTS.max_input_pixels,
        max_converted_pixels: int = DEFAULTS.max_converted_input_pixels,
        max_side: int = DEFAULTS.converted_input_max_side,
    ) -> None:
        self.workers = workers
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.max_converted_pixels = max_converted_pixels
        self.max_side = max_side

    async def judge(self, data: bytes, name: str) -> InputImage:
        return await self.workers.run(
            prepare_input,
            data,
            max_bytes=self.max_bytes,
            max_pixels=self.max_pixels,
            max_converted_pixels=self.max_converted_pixels,
            max_side=self.max_side,
            name=name,
        )


class InputRefusals:
    """Per member, the times of their recent refused images (in memory: a restart forgives them). After `limit`
    within `window` seconds, `check` refuses their requests with images until the oldest ages out."""

    def __init__(
        self,
        *,
        limit: int = DEFAULTS.input_refusal_limit,
        window: float = DEFAULTS.input_refusal_window_seconds,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._times: dict[int, deque[float]] = {}

    def check(self, user_id: int) -> None:
        times = self._recent(user_id)
        if times is not None and len(times) >= self.limit:
            raise TooManyRefusedImages(self.limit, times[0] + self.window)

    def refused(self, user_id: int) -> None:
        times = self._recent(user_id)
        if times is None:
            times = self._times[user_id] = deque(maxlen=self.limit)
        times.append(self.clock())

    def _recent(self, user_id: int) -> deque[float] | None:
        times = self._times.get(user_id)
        if times is None:
            return None
        horizon = self.clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:  # nothing to remember: the map only holds members with recent refusals
            del self._times[user_id]
            return None
        return times
