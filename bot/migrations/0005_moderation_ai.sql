-- The AI second opinion (bot/moderation_ai.py) and its appeals (bot/moderation_appeals.py) write audit rows of
-- their own: source 'ai' (a block by the second opinion), 'ai-overturned' (such a block after a successful
-- appeal) and 'appeal' (an appeal and its result, never counted toward a cool-down). SQLite cannot change a
-- CHECK constraint, so the table is rebuilt with its rows and indexes.
CREATE TABLE moderation_log_new (
    id         INTEGER PRIMARY KEY,
    created_at REAL    NOT NULL,
    user_id    INTEGER NOT NULL,
    guild_id   INTEGER,                        -- NULL in DMs and from the CLI
    channel_id INTEGER NOT NULL,
    text       TEXT    NOT NULL,
    category   TEXT    NOT NULL,               -- our category, or Google's reason (SAFETY, IMAGE_SAFETY, ...)
    term       TEXT,                           -- the listed term that matched (ours only)
    source     TEXT    NOT NULL CHECK (source IN ('bot', 'google', 'ai', 'ai-overturned', 'appeal')),
    detail     TEXT    NOT NULL DEFAULT ''
);
INSERT INTO moderation_log_new (id, created_at, user_id, guild_id, channel_id, text, category, term, source, detail)
    SELECT id, created_at, user_id, guild_id, channel_id, text, category, term, source, detail FROM moderation_log;
DROP TABLE moderation_log;
ALTER TABLE moderation_log_new RENAME TO moderation_log;
CREATE INDEX moderation_log_guild_time ON moderation_log(guild_id, created_at);
CREATE INDEX moderation_log_user_time ON moderation_log(user_id, created_at);
CREATE INDEX moderation_log_time ON moderation_log(created_at);
