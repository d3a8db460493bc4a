-- The AI second opinion (bot/moderation/ai.py) and its appeals (bot/moderation/appeals.py).
-- A block records which tier decided, and when an appeal overturned it (it then stays on record but no longer
-- counts toward a cool-down).
ALTER TABLE moderation_log ADD COLUMN tier TEXT NOT NULL DEFAULT 'local' CHECK (tier IN ('local', 'ai'));
ALTER TABLE moderation_log ADD COLUMN overturned_at REAL;

-- Every appeal of an AI block and its result; purged with the audit log.
CREATE TABLE moderation_appeals (
    id         INTEGER PRIMARY KEY,
    created_at REAL    NOT NULL,
    block_id   INTEGER NOT NULL,               -- moderation_log.id (the block may be purged first)
    user_id    INTEGER NOT NULL,
    guild_id   INTEGER,                        -- NULL in DMs
    outcome    TEXT    NOT NULL CHECK (outcome IN ('overturned', 'upheld', 'referred')),
    decided_by TEXT    NOT NULL,               -- the appeal model's id, or 'moderators'
    reason     TEXT    NOT NULL DEFAULT ''
);
-- The daily limit counts one member's appeals of the last 24 hours.
CREATE INDEX moderation_appeals_user_time ON moderation_appeals(user_id, created_at);
CREATE UNIQUE INDEX moderation_appeals_block ON moderation_appeals(block_id);
CREATE INDEX moderation_appeals_time ON moderation_appeals(created_at);
