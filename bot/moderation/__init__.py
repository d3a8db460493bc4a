"""Moderation: the pure filter (`filter`, over `scan`, `rules`, the word lists of `langs` and `terms`, `text`
normalisation and the term `index`), the optional AI second opinion (`ai`) and its appeals (`appeals`), and the
per-server store that applies them to requests, keeps the audit log and runs cool-downs (`store`)."""

from bot.moderation.ai import AI_UNAVAILABLE, AICall, AIModerator
from bot.moderation.appeals import AppealResult
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
    "AI_UNAVAILABLE",
    "CATEGORIES",
    "CATEGORY_DESCRIPTIONS",
    "DEFAULT_POLICY",
    "MAX_TERM_CHARS",
    "OPTIONAL_CATEGORIES",
    "AICall",
    "AIModerator",
    "AppealResult",
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
