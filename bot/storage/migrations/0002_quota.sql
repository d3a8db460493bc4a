-- The quota ledger: one row per unit a request held, and how it ended. Limits: -1 = unlimited.
-- guild_id 0 stands for "outside any server" (DMs, the CLI) so that keys never contain NULL.

CREATE TABLE quota_entries (
    id            INTEGER PRIMARY KEY,
    day           TEXT    NOT NULL,            -- quota day it counts against: YYYY-MM-DD in QUOTA_TIMEZONE
    guild_id      INTEGER NOT NULL,
    user_id       INTEGER NOT NULL,
    -- open -> committed | refunded; committed -> forgiven when an admin resets the user's day
    state         TEXT    NOT NULL DEFAULT 'open'
                  CHECK (state IN ('open', 'committed', 'refunded', 'forgiven')),
    reason        TEXT,                        -- why it ended: 'delivered', the failure's class name, ...
    cost_micros   INTEGER NOT NULL,            -- estimated while open, actual once committed (USD x 1e6)
    generation_id INTEGER,
    created_at    REAL    NOT NULL,            -- unix seconds
    ended_at      REAL
);
-- Every decision reads one member's entries of one day, by state.
CREATE INDEX quota_entries_member_day ON quota_entries(guild_id, user_id, day, state);
-- Crash recovery looks for open rows only.
CREATE INDEX quota_entries_open ON quota_entries(state) WHERE state = 'open';

-- Images held or delivered and their cost per day, per server (scope = guild id, 0 outside servers) and for the
-- whole bot (scope = -1). Kept by the triggers below in the same statement as the ledger change, so a cap check
-- reads one row however busy the day was. Refunded entries do not count; forgiven ones still do (they were paid).
CREATE TABLE quota_spend (
    day         TEXT    NOT NULL,
    scope       INTEGER NOT NULL,
    images      INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL,
    PRIMARY KEY (day, scope)
) WITHOUT ROWID;

CREATE TRIGGER quota_spend_on_insert AFTER INSERT ON quota_entries WHEN NEW.state != 'refunded'
BEGIN
    INSERT INTO quota_spend (day, scope, images, cost_micros)
        VALUES (NEW.day, NEW.guild_id, 1, NEW.cost_micros), (NEW.day, -1, 1, NEW.cost_micros)
        ON CONFLICT (day, scope) DO UPDATE
        SET images = images + 1, cost_micros = cost_micros + excluded.cost_micros;
END;

CREATE TRIGGER quota_spend_on_update AFTER UPDATE OF state, cost_micros ON quota_entries
BEGIN
    UPDATE quota_spend
    SET images = images + (NEW.state != 'refunded') - (OLD.state != 'refunded'),
        cost_micros = cost_micros + IIF(NEW.state = 'refunded', 0, NEW.cost_micros)
                                  - IIF(OLD.state = 'refunded', 0, OLD.cost_micros)
    WHERE day = NEW.day AND scope IN (NEW.guild_id, -1);
END;

-- Limits set by server admins. No row: the next source in line applies (see bot/quota_limits.py).
CREATE TABLE quota_server_limits (
    guild_id    INTEGER PRIMARY KEY,
    daily_limit INTEGER NOT NULL
);

CREATE TABLE quota_role_limits (
    guild_id    INTEGER NOT NULL,
    role_id     INTEGER NOT NULL,
    daily_limit INTEGER NOT NULL,
    PRIMARY KEY (guild_id, role_id)
) WITHOUT ROWID;

CREATE TABLE quota_user_limits (
    guild_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    daily_limit INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
) WITHOUT ROWID;

-- One-off extra units, valid on their quota day only.
CREATE TABLE quota_grants (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    day        TEXT    NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    granted_by INTEGER NOT NULL,
    created_at REAL    NOT NULL
);
CREATE INDEX quota_grants_member_day ON quota_grants(guild_id, user_id, day);

-- Every admin change: who, when, what.
CREATE TABLE quota_audit (
    id       INTEGER PRIMARY KEY,
    at       REAL    NOT NULL,
    guild_id INTEGER NOT NULL,
    actor_id INTEGER NOT NULL,
    action   TEXT    NOT NULL,
    user_id  INTEGER,
    role_id  INTEGER,
    value    INTEGER              -- new limit (-1 unlimited, NULL cleared), amount granted, or units forgiven
);
CREATE INDEX quota_audit_guild ON quota_audit(guild_id, at);
