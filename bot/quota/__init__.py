"""Quotas: the credits ledger (`ledger`: reserve, commit, refund, status, spend), grouped commits (`batch`),
how limits combine and what a quota day is (`limits`), and the admins' controls (`admin`)."""

from bot.quota.ledger import QuotaLedger
from bot.quota.limits import (
    GLOBAL_DEFAULT,
    MAX_LIMIT,
    ROLE,
    SERVER_DEFAULT,
    USER_OVERRIDE,
    AuditEntry,
    ProviderSpend,
    QuotaDays,
    QuotaStatus,
    ServerQuota,
    Spend,
    SpendLine,
    resolve_limit,
    to_limit,
)

__all__ = [
    "GLOBAL_DEFAULT",
    "MAX_LIMIT",
    "ROLE",
    "SERVER_DEFAULT",
    "USER_OVERRIDE",
    "AuditEntry",
    "ProviderSpend",
    "QuotaDays",
    "QuotaLedger",
    "QuotaStatus",
    "ServerQuota",
    "Spend",
    "SpendLine",
    "resolve_limit",
    "to_limit",
]
