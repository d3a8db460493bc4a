"""Editing and lineage: which picture a message edits and the instructions behind it (`conversation`), the
`generations` table (the only code that touches it), input rules (`inputs`) and image bytes (`images`)."""

from bot.editing.conversation import History, Incoming, MessageRef, source_of
from bot.editing.generations import Generation, Generations, InputSource

__all__ = ["Generation", "Generations", "History", "Incoming", "InputSource", "MessageRef", "source_of"]
