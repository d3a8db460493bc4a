"""The conversation behind an edit: which picture a message edits, and the instructions that led to that picture.

Which picture (`source_of`): a reply edits the message it replies to. In one of the bot's threads, a message
that replies to nothing edits the latest picture posted in the thread before it; before there is one, that is
the thread's starter message (the picture the thread was opened on), which lives in the parent channel.

Which instructions (`walk`): every result records its parent generation, so the conversation is read back
along that lineage, newest first, up to a depth limit. The lineage is followed rather than Discord's reply
chain because plain messages in a thread reference nothing, users' messages are unreadable without the
message-content intent, and it costs no Discord request; the reply chain decides only the first step above.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.models import Turn

# What a 2K / 4K button asks of the model: the same picture, larger (sent with the model's own earlier answer
# where it has one, else with the picture as an input image).
RENDER_INSTRUCTION = (
    "Render this exact picture again at a higher resolution. Keep everything the same: the content, composition, "
    "colours, lighting and style; only add fine detail."
)


@dataclass(frozen=True, slots=True)
class MessageRef:
    channel_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class Incoming:
    """A user's message, reduced to what decides which picture it is about."""

    message_id: int
    channel_id: int
    reference: MessageRef | None = None  # the message it replies to
    # Set only inside one of the bot's threads: the channel the thread hangs off (where its starter lives).
    thread_parent_id: int | None = None


# (thread id, before this message id) -> the id of the latest picture the bot posted there, or None.
LatestInThread = Callable[[int, int], Awaitable[int | None]]


async def source_of(incoming: Incoming, latest_in_thread: LatestInThread) -> MessageRef | None:
    """The message holding the picture `incoming` asks to edit; None when it points at no message."""
    if incoming.reference is not None:
        return incoming.reference
    if incoming.thread_parent_id is None:
        return None
    thread_id = incoming.channel_id
    latest = await latest_in_thread(thread_id, incoming.message_id)
    if latest is not None:
        return MessageRef(thread_id, latest)
    # A thread opened on a message has that message's id.
    return MessageRef(incoming.thread_parent_id, thread_id)


@dataclass(frozen=True, slots=True)
class Step:
    """One generation of a chain: the instruction it carried and the generation it edited."""

    prompt: str
    parent_id: int | None


@dataclass(frozen=True, slots=True)
class History:
    instructions: tuple[str, ...] = ()  # oldest first
    truncated: bool = False  # older steps exist beyond the depth limit
    broken: bool = False  # a step's parent could not be found (its record is gone)


def provider_prompt(prompt: str, history: tuple[str, ...]) -> str:
    """The text sent upstream: the instruction, preceded by earlier instructions of the conversation."""
    if not history:
        return prompt.strip()
    earlier = "\n".join(f"- {line}" for line in history)
    return f"Earlier instructions in this conversation (already applied):\n{earlier}\n\nNow: {prompt.strip()}"


async def walk(start_id: int | None, fetch: Callable[[int], Awaitable[Step | None]], max_depth: int) -> History:
    """The instructions of `start_id` and its ancestors, at most `max_depth` of them (the most recent)."""
    newest_first: list[str] = []
    current = start_id
    while current is not None:
        if len(newest_first) >= max_depth:
            return History(tuple(reversed(newest_first)), truncated=True)
        step = await fetch(current)
        if step is None:
            return History(tuple(reversed(newest_first)), broken=True)
        newest_first.append(step.prompt)
        current = step.parent_id
    return History(tuple(reversed(newest_first)))


@dataclass(frozen=True, slots=True)
class StoredTurn:
    """A generation of the chain as the store has it: its instruction, and the model's answer if one was kept."""

    generation_id: int
    prompt: str
    model: str | None  # the model id whose answer `size` bytes were kept (None: nothing kept)
    size: int


def signed(answer: str) -> bool:
    """Whether every picture of a model answer carries its thought signature: a model turn without one is a 400,
    so such an answer is never sent back."""
    try:
        content = json.loads(answer)
    except ValueError:
        return False
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or content.get("role") != "model":
        return False
    pictures = [p for p in parts if isinstance(p, dict) and "inlineData" in p and not p.get("thought")]
    return bool(pictures) and all(p.get("thoughtSignature") for p in pictures)


def choose_turns(chain: Sequence[StoredTurn], model: str, max_turns: int, max_bytes: int) -> list[StoredTurn]:
    """Which earlier answers go back with an edit: the newest steps of the chain (`chain` is newest first) whose
    answer was kept from the same model, at most `max_turns` and `max_bytes` together, stopping at the first
    step that does not qualify (a turn from another model or provider, or missing, breaks the conversation).
    Oldest first."""
    chosen: list[StoredTurn] = []
    total = 0
    for step in chain[:max_turns]:
        if step.model != model or total + step.size > max_bytes:
            break
        chosen.append(step)
        total += step.size
    return chosen[::-1]


def as_turns(chosen: Sequence[StoredTurn], answers: dict[int, str]) -> tuple[Turn, ...]:
    """The chosen steps (oldest first) as provider turns, from the newest back to the first whose answer is
    missing or unsigned: a model turn without its signature is never sent."""
    newest_first: list[Turn] = []
    for step in reversed(chosen):
        answer = answers.get(step.generation_id, "")
        if not signed(answer):
            break
        newest_first.append(Turn(step.prompt, answer))
    return tuple(reversed(newest_first))
