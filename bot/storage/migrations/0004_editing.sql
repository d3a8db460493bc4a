-- Conversational editing: results whose Discord message is gone, lookups by channel, and input provenance.

-- Set when the result's message was deleted (Delete button or by hand); such a result is never edited again.
ALTER TABLE generations ADD COLUMN deleted_at REAL;
-- "The latest picture in this thread before message X".
CREATE INDEX generations_channel_message ON generations(channel_id, message_id);

-- Where each input image of a generation came from, so a Reroll can fetch it again from Discord (attachment ids
-- are stable; their URLs expire). `data` holds the bytes only when KEEP_INPUT_IMAGES is on.
CREATE TABLE generation_inputs (
    generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,            -- order sent upstream, from 0
    channel_id    INTEGER,                     -- NULL for uploads to a slash command (they have no message)
    message_id    INTEGER,
    attachment_id INTEGER,
    mime_type     TEXT    NOT NULL,
    data          BLOB,
    PRIMARY KEY (generation_id, position)
);
