-- PostgreSQL twin of ../0009_operations.sql; the comments there say what each table and column means.

CREATE TABLE server_settings (
    guild_id          BIGINT  PRIMARY KEY,
    allowed_places    TEXT    NOT NULL DEFAULT '[]',
    denied_places     TEXT    NOT NULL DEFAULT '[]',
    generator_roles   TEXT    NOT NULL DEFAULT '[]',
    threads_allowed   BIGINT  NOT NULL DEFAULT 1,
    explain_refusals  BIGINT  NOT NULL DEFAULT 0,
    alert_channel_id  BIGINT,
    updated_at        DOUBLE PRECISION NOT NULL,
    updated_by        BIGINT
);

CREATE TABLE quota_forgotten (
    user_id       BIGINT  PRIMARY KEY,
    day           TEXT    NOT NULL,
    last_entry_id BIGINT  NOT NULL
);
