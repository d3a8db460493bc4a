-- Running the bot for real: where it may be used in each server, where budget alerts go, and members who asked to
-- be forgotten whose ledger entries still count toward today's limits.

-- Per-server rules for the doors Discord does not gate (replies, thread messages, mentions, buttons) and the
-- slash commands alike. No row: the bot may be used everywhere, by everyone, threads included.
CREATE TABLE server_settings (
    guild_id          INTEGER PRIMARY KEY,
    allowed_places    TEXT    NOT NULL DEFAULT '[]',  -- JSON ids of channels or categories; empty: everywhere
    denied_places     TEXT    NOT NULL DEFAULT '[]',  -- JSON ids of channels or categories; these win
    generator_roles   TEXT    NOT NULL DEFAULT '[]',  -- JSON role ids that may generate; empty: everyone
    threads_allowed   INTEGER NOT NULL DEFAULT 1,
    explain_refusals  INTEGER NOT NULL DEFAULT 0,     -- answer a message in a closed place with the rule
    alert_channel_id  INTEGER,                        -- where budget alerts for this server go; NULL: nowhere
    updated_at        REAL    NOT NULL,
    updated_by        INTEGER
);

-- Members who had themselves forgotten: their entries up to last_entry_id keep their id until `day` has ended
-- (today's limits count them), then the retention pass anonymises them and deletes the row.
CREATE TABLE quota_forgotten (
    user_id       INTEGER PRIMARY KEY,
    day           TEXT    NOT NULL,
    last_entry_id INTEGER NOT NULL
);
