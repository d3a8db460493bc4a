"""Moderation: the pure filter (`filter`, over `text` normalisation, the term `index` and built-in `terms`) and
the per-server store that applies it to requests, keeps the audit log and runs cool-downs (`store`)."""

from bot.moderation.filter import (
    CATEGORIES,
    CATEGORY_DESCRIPTIONS,
    DEFAULT_POLICY,
    OPTIONAL_CATEGORIES,
    Explanation,
    Policy,
    Verdict,
    evaluate,
    evaluate_conversation,
    explain,
)
from bot.moderation.store import MAX_TERM_CHARS, AuditEntry, BlockHook, Moderation, ModerationConfig

__all__ = [
    "CATEGORIES",
    "CATEGORY_DESCRIPTIONS",
    "DEFAULT_POLICY",
    "MAX_TERM_CHARS",
    "OPTIONAL_CATEGORIES",
    "AuditEntry",
    "BlockHook",
    "Explanation",
    "Moderation",
    "ModerationConfig",
    "Policy",
    "Verdict",
    "evaluate",
    "evaluate_conversation",
    "explain",
]
