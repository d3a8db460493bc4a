-- PostgreSQL twin of ../0004_editing.sql; the comments there say what each column means.
ALTER TABLE generations ADD COLUMN deleted_at DOUBLE PRECISION;
CREATE INDEX generations_channel_message ON generations(channel_id, message_id);

CREATE TABLE generation_inputs (
    generation_id BIGINT  NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
    position      BIGINT  NOT NULL,
    channel_id    BIGINT,
    message_id    BIGINT,
    attachment_id BIGINT,
    mime_type     TEXT    NOT NULL,
    data          BYTEA,
    PRIMARY KEY (generation_id, position)
);
