-- Providers and failover (issue 13): which provider made each picture, what each provider may bill for each
-- request (and for each moderation check), and whose safety filter refused a prompt, so that spend is shown per
-- provider and model and users read the right name.

-- The configured provider (PROVIDERS) that made the picture, or whose error ended the request (NULL: none, or
-- several failed).
ALTER TABLE generations ADD COLUMN provider TEXT;

-- What each provider may bill, per request and model: written when the request's ledger entry ends (committed or
-- refunded, in the same transaction; the entry's cost_micros is then their sum), or with spend that holds no
-- request (a call of the moderation model: entry_id NULL). An ended entry without rows billed nothing, was refunded
-- by crash recovery (its estimate, no provider known), or ended before providers were recorded.
CREATE TABLE quota_costs (
    id          INTEGER PRIMARY KEY,
    entry_id    INTEGER REFERENCES quota_entries(id) ON DELETE CASCADE,
    day         TEXT    NOT NULL,              -- the quota day and server (0 outside servers) it counts for, so a
    guild_id    INTEGER NOT NULL,              -- day's spend per provider is read without a join
    provider    TEXT    NOT NULL,              -- '' when no provider can be told (a call cut off by a shutdown)
    model       TEXT    NOT NULL,              -- our model id (the moderation model's own id)
    pictures    INTEGER NOT NULL DEFAULT 0,    -- 1 when this provider made the request's picture
    failed      INTEGER NOT NULL DEFAULT 0,    -- attempts without a picture that it may bill
    checks      INTEGER NOT NULL DEFAULT 0,    -- calls of the moderation model
    cost_micros INTEGER NOT NULL               -- USD x 1e6
);
CREATE INDEX quota_costs_day ON quota_costs(day, guild_id);

-- The name users read for the provider whose filter refused (NULL: the bot's own rules, or Google's in rows
-- from before gateways).
ALTER TABLE moderation_log ADD COLUMN provider TEXT;
