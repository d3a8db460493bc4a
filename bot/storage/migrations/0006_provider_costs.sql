-- Providers and failover (issue 13): which provider made each picture, what each provider may bill for each
-- request, and whose safety filter refused a prompt, so that spend is shown per provider and model and users
-- read the right name.

-- The configured provider (PROVIDERS) that made the picture, or whose error ended the request (NULL: none, or
-- several failed).
ALTER TABLE generations ADD COLUMN provider TEXT;

-- What one request's calls may cost at each provider, written when its ledger entry ends (committed or refunded,
-- in the same transaction); the entry's cost_micros is then their sum. An ended entry without rows billed nothing,
-- was refunded by crash recovery (its estimate, no provider known), or ended before providers were recorded.
CREATE TABLE quota_costs (
    entry_id    INTEGER NOT NULL REFERENCES quota_entries(id) ON DELETE CASCADE,
    day         TEXT    NOT NULL,              -- the entry's quota day and server (0 outside servers), so a day's
    guild_id    INTEGER NOT NULL,              -- spend per provider is read without a join
    provider    TEXT    NOT NULL,              -- '' when no provider can be told (a call cut off by a shutdown)
    model       TEXT    NOT NULL,              -- our model id, whatever the provider calls it
    pictures    INTEGER NOT NULL,              -- 1 when this provider made the request's picture
    failed      INTEGER NOT NULL,              -- attempts without a picture that it may bill
    cost_micros INTEGER NOT NULL,              -- USD x 1e6
    PRIMARY KEY (entry_id, provider)
) WITHOUT ROWID;
CREATE INDEX quota_costs_day ON quota_costs(day, guild_id);

-- The name users read for the provider whose filter refused (NULL: the bot's own rules, or Google's in rows
-- from before gateways).
ALTER TABLE moderation_log ADD COLUMN provider TEXT;
