"""Moderation with its database: server rules, the audit log, retention and cool-downs."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.errors import CoolingDown, ImageBlocked, InvalidRequest, ModerationBlocked, PromptBlocked
from bot.models import ImageRequest
from bot.moderation.store import Moderation
from bot.services import build_moderation

GUILD, OTHER_GUILD, USER, CHANNEL = 100, 200, 7, 55
DAY = 86_400.0


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def moderation(db, clock) -> Moderation:
    return Moderation(
        db, cooldown_blocks=3, cooldown_window_seconds=600, cooldown_seconds=900, retention_days=90, clock=clock
    )


def request(prompt: str, guild: int | None = GUILD, user: int = USER, history: tuple[str, ...] = ()) -> ImageRequest:
    return ImageRequest(user_id=user, channel_id=CHANNEL, prompt=prompt, guild_id=guild, history=history)


async def blocked(moderation: Moderation, prompt: str, **kwargs) -> ModerationBlocked:
    with pytest.raises(ModerationBlocked) as info:
        await moderation.check(request(prompt, **kwargs))
    return info.value


async def test_benign_prompt_passes_and_leaves_no_audit_row(moderation):
    await moderation.check(request("a cocktail bar at sunset"))
    assert await moderation.log(GUILD) == []


async def test_block_is_audited_with_who_where_what(moderation, clock):
    exc = await blocked(moderation, "a n.u.d.e woman")
    assert (exc.category, exc.term) == ("sexual", "n.u.d.e")
    [row] = await moderation.log(GUILD)
    assert (row.user_id, row.guild_id, row.channel_id, row.text) == (USER, GUILD, CHANNEL, "a n.u.d.e woman")
    assert (row.category, row.term, row.source, row.created_at) == ("sexual", "nude", "bot", clock.now)


async def test_csam_block_gives_no_hint_to_the_user_but_audits_the_term(moderation):
    exc = await blocked(moderation, "s3xy t33n")
    assert (exc.category, exc.term) == ("csam", None)
    [row] = await moderation.log(GUILD)
    assert row.term == "teen + sexy"


async def test_google_blocks_are_audited_as_googles(moderation):
    await moderation.record_upstream_block(request("a castle"), PromptBlocked("PROHIBITED_CONTENT"))
    await moderation.record_upstream_block(request("a tower"), ImageBlocked("IMAGE_SAFETY", "cannot draw that"))
    rows = await moderation.log(GUILD)
    assert [(r.source, r.category, r.text, r.detail) for r in rows] == [
        ("google", "IMAGE_SAFETY", "a tower", "image refused: cannot draw that"),
        ("google", "PROHIBITED_CONTENT", "a castle", "prompt refused"),
    ]


async def test_server_terms_take_effect_at_once_and_only_in_that_server(moderation):
    await moderation.check(request("a banana split"))  # also fills the policy cache
    assert await moderation.add_term(GUILD, "banana", by=1)
    exc = await blocked(moderation, "a b4n4n4 split")
    assert (exc.category, exc.term) == ("custom", "b4n4n4")
    await moderation.check(request("a banana split", guild=OTHER_GUILD))
    assert await moderation.remove_term(GUILD, "BANANA")
    await moderation.check(request("a banana split"))
    assert not await moderation.remove_term(GUILD, "banana")


async def test_server_allowed_term_unblocks_but_never_softens_csam(moderation):
    with pytest.raises(ModerationBlocked):
        await moderation.check(request("a nude beach in France"))
    await moderation.add_term(GUILD, "nude beach", kind="allow")
    await moderation.check(request("a nude beach in France"))
    exc = await blocked(moderation, "kids at a nude beach")
    assert exc.category == "csam"
    with pytest.raises(InvalidRequest, match="csam"):
        await moderation.add_term(GUILD, "sexy teen", kind="allow")


async def test_same_term_spelled_differently_is_one_entry(moderation):
    assert await moderation.add_term(GUILD, "banana")
    assert not await moderation.add_term(GUILD, "B4N4N4")
    config = await moderation.list_config(GUILD)
    assert config.blocked_terms == ("banana",)


@pytest.mark.parametrize(
    ("term", "kind", "message"),
    [("banana", "maybe", "block' or 'allow"), ("!!!", "block", "no letters"), ("x" * 101, "block", "at most")],
)
async def test_invalid_terms_are_refused_with_a_reason(moderation, term, kind, message):
    with pytest.raises(InvalidRequest, match=message):
        await moderation.add_term(GUILD, term, kind=kind)


async def test_term_count_is_capped(db, clock):
    moderation = Moderation(db, max_terms=2, clock=clock)
    await moderation.add_term(GUILD, "apple")
    await moderation.add_term(GUILD, "pear")
    with pytest.raises(InvalidRequest, match="already has 2 terms"):
        await moderation.add_term(GUILD, "plum")


async def test_csam_cannot_be_switched_off(moderation):
    with pytest.raises(InvalidRequest, match="cannot be switched off"):
        await moderation.set_category(GUILD, "csam", False)
    for category in ("sexual", "gore", "hate", "real_people_sexual"):
        await moderation.set_category(GUILD, category, False)
    await moderation.check(request("a nude woman"))
    assert (await blocked(moderation, "a nude teen")).category == "csam"
    config = await moderation.list_config(GUILD)
    assert config.enabled == {
        "csam": True,
        "sexual": False,
        "gore": False,
        "hate": False,
        "real_people_sexual": False,
    }


async def test_switching_a_category_affects_only_that_server(moderation):
    await moderation.set_category(GUILD, "gore", False)
    await moderation.check(request("a gory battle"))
    await blocked(moderation, "a gory battle", guild=OTHER_GUILD)
    await moderation.set_category(GUILD, "gore", True)
    await blocked(moderation, "a gory battle")
    with pytest.raises(InvalidRequest, match="Unknown category"):
        await moderation.set_category(GUILD, "violence", False)


async def test_dms_use_the_defaults(moderation):
    await moderation.set_category(GUILD, "sexual", False)
    exc = await blocked(moderation, "a nude woman", guild=None)
    assert exc.category == "sexual"
    [row] = await moderation.log(None)
    assert row.guild_id is None


async def test_history_texts_are_checked_too_but_not_held_against_this_user(moderation):
    # An earlier instruction that matches now (a term added since, or another member's turn in the chain) refuses
    # the edit, but is neither logged as this user's prompt nor counted toward their cool-down.
    for _ in range(5):
        exc = await blocked(moderation, "make it brighter", history=("a portrait", "now a topless version"))
        assert exc.category == "sexual" and exc.in_history
    assert await moderation.log(GUILD) == []
    assert await moderation.cooldown_until(GUILD, USER) is None


async def test_a_minor_in_history_and_a_sexual_word_now_is_csam(moderation):
    exc = await blocked(moderation, "make her sexy", history=("a 12 year old at the park",))
    assert (exc.category, exc.term) == ("csam", None)
    [row] = await moderation.log(GUILD)
    assert row.text == "a 12 year old at the park\nmake her sexy"


async def test_operator_switch_leaves_only_csam(db, clock):
    moderation = Moderation(db, enabled=False, clock=clock)
    await moderation.add_term(GUILD, "banana")
    await moderation.check(request("a nude woman with a banana"))
    assert (await blocked(moderation, "loli")).category == "csam"
    assert not (await moderation.list_config(GUILD)).moderation_enabled


async def test_repeated_blocks_start_a_cool_down_that_ends(moderation, clock):
    for _ in range(2):
        await blocked(moderation, "porn")
        clock.now += 60
    await moderation.check(request("a cat"))  # two blocks: not yet
    await blocked(moderation, "porn")
    with pytest.raises(CoolingDown) as info:
        await moderation.check(request("a cat"))
    assert info.value.until_ts == clock.now + 900
    assert len(await moderation.log(GUILD)) == 3  # the refused cat is not a block
    assert not info.value.elsewhere
    clock.now += 901
    await moderation.check(request("a cat"))


async def test_a_cool_down_follows_the_member_to_other_servers_and_dms(moderation, clock):
    # Issue 12.4: blocks add up wherever they happen, and the cool-down refuses the member everywhere.
    await blocked(moderation, "porn")
    await blocked(moderation, "porn", guild=OTHER_GUILD)
    await moderation.check(request("a cat", guild=None))  # two blocks so far, in two servers
    exc = await blocked(moderation, "porn", guild=None)
    assert exc.cooldown_until == clock.now + 900  # the third, in DMs, starts it there
    for guild in (GUILD, OTHER_GUILD, None):
        with pytest.raises(CoolingDown) as info:
            await moderation.check(request("a cat", guild=guild))
        assert info.value.until_ts == clock.now + 900 and info.value.elsewhere == (guild is not None)
    await moderation.check(request("a cat", user=USER + 1))  # nobody else
    # Only where it began can it be lifted: a server's moderators cannot lift what began in DMs.
    assert not await moderation.lift_cooldown(GUILD, USER)
    with pytest.raises(CoolingDown):
        await moderation.check(request("a cat", guild=GUILD))
    assert await moderation.active_cooldown(USER) == (clock.now + 900, None)


async def test_blocks_spread_beyond_the_window_do_not_add_up(moderation, clock):
    for _ in range(5):
        await blocked(moderation, "porn")
        clock.now += 301
    await moderation.check(request("a cat"))


async def test_google_blocks_count_toward_the_cool_down(moderation):
    for _ in range(3):
        await moderation.record_upstream_block(request("a thing"), PromptBlocked("SAFETY"))
    with pytest.raises(CoolingDown):
        await moderation.check(request("a cat"))


async def test_admin_lifts_a_cool_down_and_the_count_restarts(moderation, clock):
    for _ in range(3):
        await blocked(moderation, "porn")
    assert await moderation.cooldown_until(GUILD, USER) == clock.now + 900
    clock.now += 10
    assert await moderation.lift_cooldown(GUILD, USER)
    await moderation.check(request("a cat"))
    await blocked(moderation, "porn")  # one fresh block after the lift does not re-trigger
    await moderation.check(request("a cat"))
    assert not await moderation.lift_cooldown(GUILD, USER)


async def test_purge_removes_rows_past_retention(moderation, clock):
    await blocked(moderation, "porn")
    clock.now += 89 * DAY
    await blocked(moderation, "gore")
    clock.now += 2 * DAY
    assert await moderation.purge_expired() == 1
    assert [row.category for row in await moderation.log(GUILD)] == ["gore"]


async def test_recording_purges_expired_rows_once_a_day(moderation, clock):
    await blocked(moderation, "porn")
    clock.now += 91 * DAY
    await blocked(moderation, "gore")
    assert [row.category for row in await moderation.log(GUILD)] == ["gore"]


async def test_log_filters_by_user_and_limits(moderation, clock):
    for user in (1, 2, 1):
        clock.now += 1
        await blocked(moderation, "porn", user=user)
    assert [r.user_id for r in await moderation.log(GUILD, limit=2)] == [1, 2]
    assert len(await moderation.log(GUILD, user_id=1)) == 2


async def test_log_channel_setting(moderation):
    assert await moderation.get_log_channel(GUILD) is None
    await moderation.set_log_channel(GUILD, 999)
    assert (await moderation.list_config(GUILD)).log_channel_id == 999
    await moderation.set_log_channel(GUILD, None)
    assert await moderation.get_log_channel(GUILD) is None


async def test_explain_uses_the_servers_rules(moderation):
    await moderation.add_term(GUILD, "banana")
    explanation = await moderation.explain(GUILD, "b4n4n4")
    assert explanation.verdict.category == "custom"
    assert (await moderation.explain(OTHER_GUILD, "b4n4n4")).verdict.allowed


def test_from_settings_takes_the_moderation_settings(db):
    settings = Settings(
        discord_token="t",
        gemini_api_key="k",
        moderation_enabled=False,
        moderation_cooldown_blocks=5,
        moderation_cooldown_window_seconds=60,
        moderation_cooldown_seconds=30,
        moderation_log_retention_days=7,
    )
    moderation = build_moderation(db, settings)
    assert (moderation.enabled, moderation.cooldown_blocks, moderation.retention_days) == (False, 5, 7)
    assert (moderation.cooldown_window_seconds, moderation.cooldown_seconds) == (60, 30)
