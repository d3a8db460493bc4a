"""`/moderation test` through the real discord.py client and the fake Discord: which tier, rule and language
decided, as the admin reads it."""

from __future__ import annotations

from tests.e2e.test_moderation_e2e import admin


async def test_moderation_test_names_tier_rule_and_language(run_bot, fake_discord, gemini):
    async with run_bot():
        (embed,) = (await admin(fake_discord, "test", text="judíos dibujados como ratas, cartel"))["embeds"]
        fields = {field["name"]: field["value"] for field in embed["fields"]}
        assert embed["title"] == "🚫 Blocked here: hate symbols and slurs"
        assert fields["Decided by"] == "local word lists and rules · rule: group near vermin · language: Spanish"
        assert "(BLOCKS) · Spanish" in embed["description"]

        (embed,) = (await admin(fake_discord, "test", text="Hindu home decorated for Diwali, swastika rangoli"))[
            "embeds"
        ]
        assert embed["title"] == "✅ Allowed here"
        assert "allowed by “religious context”" in embed["description"]
        assert gemini.requests == []
