"""Where the bot may be used: the rules as a table of cases, and the store that keeps them per server."""

from __future__ import annotations

import pytest

from bot.errors import InvalidRequest, NotHere
from bot.ops.access import MAX_ENTRIES, Place, ServerRules, check
from bot.ops.server_settings import ServerSettings

GUILD, GENERAL, QUIET, STUDIO, ART, ARTISTS = 1, 10, 11, 12, 20, 30
OPEN = ServerRules(GUILD)

CASES = [
    # rules, place, roles, allow_dms -> the rule that refuses (None: allowed)
    (None, Place(None, 5), (), True, None),
    (None, Place(None, 5), (), False, "dms"),
    (None, Place(GUILD, GENERAL), (), False, None),  # ALLOW_DMS is about DMs only
    (OPEN, Place(GUILD, GENERAL, in_thread=True), (), True, None),
    (ServerRules(GUILD, denied=(QUIET,)), Place(GUILD, QUIET), (), True, "channel"),
    (ServerRules(GUILD, denied=(QUIET,)), Place(GUILD, QUIET, in_thread=True), (), True, "channel"),  # its threads
    (ServerRules(GUILD, denied=(QUIET,)), Place(GUILD, GENERAL), (), True, None),
    (ServerRules(GUILD, allowed=(ART,)), Place(GUILD, STUDIO, ART), (), True, None),  # a category covers its channels
    (ServerRules(GUILD, allowed=(ART,)), Place(GUILD, GENERAL), (), True, "channel"),
    (ServerRules(GUILD, allowed=(ART,), denied=(STUDIO,)), Place(GUILD, STUDIO, ART), (), True, "channel"),  # deny wins
    (ServerRules(GUILD, denied=(ART,)), Place(GUILD, STUDIO, ART), (), True, "channel"),
    (ServerRules(GUILD, threads=False), Place(GUILD, GENERAL, in_thread=True), (), True, "thread"),
    (ServerRules(GUILD, threads=False), Place(GUILD, GENERAL), (), True, None),
    (ServerRules(GUILD, roles=(ARTISTS,)), Place(GUILD, GENERAL), (), True, "role"),
    (ServerRules(GUILD, roles=(ARTISTS,)), Place(GUILD, GENERAL), (99, ARTISTS), True, None),
]


@pytest.mark.parametrize("rules,place,roles,allow_dms,refused", CASES)
def test_rules(rules, place, roles, allow_dms, refused):
    if refused is None:
        check(rules, place, roles, allow_dms=allow_dms)
        return
    with pytest.raises(NotHere) as info:
        check(rules, place, roles, allow_dms=allow_dms)
    assert info.value.rule == refused


def test_messages_in_closed_places_are_ignored_unless_the_server_asks_for_answers():
    for explain in (False, True):
        with pytest.raises(NotHere) as info:
            check(ServerRules(GUILD, denied=(QUIET,), explain=explain), Place(GUILD, QUIET), (), allow_dms=True)
        assert info.value.quiet is not explain
    with pytest.raises(NotHere) as info:
        check(None, Place(None, 5), (), allow_dms=False)
    assert not info.value.quiet  # a DM is private: always answered


async def test_the_store_keeps_each_servers_rules_and_sees_changes_at_once(db):
    store = ServerSettings(db, allow_dms=True, clock=lambda: 1000.0)
    assert await store.rules(GUILD) == OPEN
    await store.check(Place(GUILD, QUIET), ())  # cached as "no rules" now ...
    changed = await store.update(GUILD, by=7, denied=[QUIET, QUIET], alert_channel_id=GENERAL)
    assert changed == ServerRules(GUILD, denied=(QUIET,), alert_channel_id=GENERAL)
    with pytest.raises(NotHere):
        await store.check(Place(GUILD, QUIET), ())  # ... and the change applies to the very next request
    assert await ServerSettings(db).rules(GUILD) == changed  # stored, not only cached
    assert await store.rules(2) == ServerRules(2)  # other servers are untouched
    row = await db.fetchone("SELECT updated_by, updated_at FROM server_settings WHERE guild_id = ?", (GUILD,))
    assert tuple(row) == (7, 1000.0)

    with pytest.raises(InvalidRequest):
        await store.update(GUILD, by=7, roles=range(1, MAX_ENTRIES + 2))
    with pytest.raises(ValueError):
        await store.update(GUILD, by=7, colour="red")
    assert await store.reset(GUILD) == OPEN
    await store.check(Place(GUILD, QUIET), ())
