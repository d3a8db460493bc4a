-- One row per image request that got past the checks, whatever door it came through.
CREATE TABLE generations (
    id            INTEGER PRIMARY KEY,
    created_at    REAL    NOT NULL,            -- unix seconds
    finished_at   REAL,
    user_id       INTEGER NOT NULL,
    guild_id      INTEGER,                     -- NULL in DMs and from the CLI
    channel_id    INTEGER NOT NULL,
    kind          TEXT    NOT NULL,            -- imagine | edit | reply | thread | reroll | cli
    prompt        TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    options_json  TEXT    NOT NULL DEFAULT '{}',
    input_images  INTEGER NOT NULL DEFAULT 0,
    parent_id     INTEGER REFERENCES generations(id) ON DELETE SET NULL,
    -- pending -> delivered | failed
    status        TEXT    NOT NULL DEFAULT 'pending',
    error_kind    TEXT,                        -- the BotError class name when failed
    error_detail  TEXT,
    prompt_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens  INTEGER,
    queued_ms     REAL,                        -- waiting for the upstream gate
    upstream_ms   REAL,                        -- the provider call, retries included
    mime_type     TEXT,
    image_bytes   INTEGER,
    message_id    INTEGER                      -- the Discord message that shows the result
);
CREATE INDEX generations_user_day ON generations(user_id, created_at);
CREATE INDEX generations_message ON generations(message_id);
