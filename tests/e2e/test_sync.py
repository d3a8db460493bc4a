"""`python -m bot sync` logs in only to publish the commands: it builds the command tree and nothing else."""

from __future__ import annotations

from bot.app import ImageBot


async def test_a_bot_that_does_not_serve_opens_no_database_and_no_session(fake_discord, settings_for):
    settings = settings_for(fake_discord)
    async with fake_discord.running(ImageBot(settings, serving=False)) as bot:
        assert bot.tree.get_command("imagine") is not None  # the extensions loaded their commands
        assert getattr(bot, "services", None) is None
        assert not settings.database_path.exists()
