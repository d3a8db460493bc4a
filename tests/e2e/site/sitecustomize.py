"""Loaded by Python at start-up in the bot processes the end-to-end tests start (this folder is put on their
PYTHONPATH): with GIB_TEST_DISCORD_URL set, discord.py talks to the test's fake Discord, as `FakeDiscord` arranges
for a bot in the test's own process. The bot itself runs unchanged (`python -m bot`)."""

import os

_URL = os.environ.get("GIB_TEST_DISCORD_URL")
if _URL:
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = _URL + "/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(_URL.replace("http://", "ws://") + "/gateway")
