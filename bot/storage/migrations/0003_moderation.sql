-- Per-server moderation settings. Servers without rows use the defaults (every category on).
CREATE TABLE moderation_guilds (
    guild_id       INTEGER PRIMARY KEY,
    log_channel_id INTEGER,                    -- where the cog posts blocks; NULL: nowhere
    updated_at     REAL    NOT NULL
);

CREATE TABLE moderation_categories (
    guild_id   INTEGER NOT NULL,
    category   TEXT    NOT NULL,               -- an optional category; csam is never stored
    enabled    INTEGER NOT NULL,
    updated_at REAL    NOT NULL,
    updated_by INTEGER,
    PRIMARY KEY (guild_id, category)
);

CREATE TABLE moderation_terms (
    guild_id   INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('block', 'allow')),
    term       TEXT    NOT NULL,               -- as the moderator typed it
    normalised TEXT    NOT NULL,               -- how the filter reads it; two spellings of one term clash
    added_at   REAL    NOT NULL,
    added_by   INTEGER,
    PRIMARY KEY (guild_id, kind, normalised)
);

-- Every refused request, by the bot's rules or Google's filter; rows older than the retention are purged.
CREATE TABLE moderation_log (
    id         INTEGER PRIMARY KEY,
    created_at REAL    NOT NULL,
    user_id    INTEGER NOT NULL,
    guild_id   INTEGER,                        -- NULL in DMs and from the CLI
    channel_id INTEGER NOT NULL,
    text       TEXT    NOT NULL,
    category   TEXT    NOT NULL,               -- our category, or Google's reason (SAFETY, IMAGE_SAFETY, ...)
    term       TEXT,                           -- the listed term that matched (ours only)
    source     TEXT    NOT NULL CHECK (source IN ('bot', 'google')),
    detail     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX moderation_log_guild_time ON moderation_log(guild_id, created_at);
CREATE INDEX moderation_log_user_time ON moderation_log(user_id, created_at);
CREATE INDEX moderation_log_time ON moderation_log(created_at);

-- One row per user and server (0 for DMs) once they were blocked. Blocks count toward a cool-down only after
-- `since`, which moves when a cool-down starts or is lifted, so a lifted user starts from a clean slate.
CREATE TABLE moderation_cooldowns (
    guild_key INTEGER NOT NULL,
    user_id   INTEGER NOT NULL,
    until     REAL    NOT NULL,
    since     REAL    NOT NULL,
    PRIMARY KEY (guild_key, user_id)
);
