"""Buttons judged by what they sit on, not only by what their custom_id says (issue 12, item 9).

A modified client may send a component interaction with a custom_id of its choosing against a message it sees;
Discord's and discord.py's checks that the button is on that message are not something the bot should rest
on. Such a press acts on nothing but the message it was made on: a result button whose generation id is not
that message's picture does nothing, and Cancel stops only a request that waits on that very message, pressed
by its requester or a moderator of its server.
"""

from __future__ import annotations

from tests.e2e.edit_helpers import ephemeral_text, imagine
from tests.e2e.test_queue_e2e import FOREVER, cancel_id, gemini_busy, waiting
from tests.fakes.discord import FakeDiscord, Interaction, Member, Message


async def forged_click(fake: FakeDiscord, message: Message, custom_id: str, user: Member) -> Interaction:
    """A press of a button the bot never put on `message`: the interaction shows the message with it."""
    button = {"type": 2, "style": 2, "label": "forged", "custom_id": custom_id}
    message.components.append({"type": 1, "components": [button]})
    try:
        return await fake.click(message, custom_id, user=user)
    finally:
        message.components.pop()


async def test_a_result_button_acts_only_on_the_picture_it_is_under(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob = fake.add_member("bob")
    async with run_bot() as bot:
        secret = await imagine(fake, bot, "alice's private idea")  # generation 1
        bobs = await fake.slash("imagine", {"prompt": "bob's fox"}, user=bob)
        mine = await bobs.wait_for_original(lambda m: m.attachments)  # generation 2
        assert await bot.services.pipeline.drain(within=5)

        # A Reroll of Alice's generation from under Bob's picture would show him her prompt as his own request.
        reroll = await forged_click(fake, mine, "gib:reroll:1", bob)
        assert "doesn't belong" in await ephemeral_text(reroll)
        # Delete naming Bob's own picture, pressed on Alice's: the requester check passes, the message is hers.
        delete = await forged_click(fake, secret, "gib:delete:2", bob)
        assert "doesn't belong" in await ephemeral_text(delete)
        assert not secret.deleted
        assert await bot.services.pipeline.drain(within=5)
    assert [call.prompt for call in gemini.requests] == ["alice's private idea", "bob's fox"]


async def test_cancel_stops_only_the_request_waiting_on_that_message(run_bot, fake_discord, gemini):
    fake = fake_discord
    bob, carol = fake.add_member("bob"), fake.add_member("carol")
    gemini.latency = 0.2
    async with run_bot(**FOREVER):
        first = await fake.slash("imagine", {"prompt": "a fox"})
        await gemini_busy(fake, gemini)
        bobs = await fake.slash("imagine", {"prompt": "a cat"}, user=bob)
        carols = await fake.slash("imagine", {"prompt": "a dog"}, user=carol)
        await waiting(bobs)
        await waiting(carols)
        key = cancel_id(bobs).split(":")[2]

        # Carol names herself as the requester of Bob's request, on Bob's message and then on her own.
        for message in (bobs.original, carols.original):
            press = await forged_click(fake, message, f"gib:cancel:{key}:{carol.id}", carol)
            assert "Only the person who asked" in await ephemeral_text(press)
        assert cancel_id(bobs)  # still waiting
        # Bob's own button pressed by Bob still works.
        await fake.click(bobs.original, cancel_id(bobs), user=bob)
        await bobs.wait_for_original(lambda m: m.content.startswith("Cancelled"))
        await first.wait_for_original(lambda m: m.attachments)
        assert cancel_id(carols)  # Carol's own request waits on
        assert [call.prompt for call in gemini.requests] == ["a fox"]
