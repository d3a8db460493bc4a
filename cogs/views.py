"""Buttons on results. Placeholder until the editing feature fills it in."""

from __future__ import annotations

import discord


def result_view(generation_id: int, requester_id: int) -> discord.ui.View | None:
    """The buttons shown under a delivered image (None: no buttons)."""
    return None
