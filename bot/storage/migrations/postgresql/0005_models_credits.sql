-- PostgreSQL twin of ../0005_models_credits.sql; the comments there say what each change means.

ALTER TABLE quota_entries ADD COLUMN credits BIGINT NOT NULL DEFAULT 1 CHECK (credits >= 0);
ALTER TABLE quota_entries ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
UPDATE quota_entries SET cost_micros = 0 WHERE state = 'refunded';
CREATE INDEX quota_entries_user_day ON quota_entries(user_id, day);

DROP TRIGGER quota_spend_on_insert ON quota_entries;
DROP TRIGGER quota_spend_on_update ON quota_entries;

CREATE OR REPLACE FUNCTION quota_spend_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted BIGINT := (NEW.state <> 'refunded' OR NEW.cost_micros > 0)::int;
BEGIN
    INSERT INTO quota_spend AS s (day, scope, images, cost_micros)
        VALUES (NEW.day, NEW.guild_id, counted, NEW.cost_micros), (NEW.day, -1, counted, NEW.cost_micros)
        ON CONFLICT (day, scope) DO UPDATE
        SET images = s.images + excluded.images, cost_micros = s.cost_micros + excluded.cost_micros;
    RETURN NULL;
END $$;

CREATE TRIGGER quota_spend_on_insert AFTER INSERT ON quota_entries
    FOR EACH ROW EXECUTE FUNCTION quota_spend_on_insert();

CREATE OR REPLACE FUNCTION quota_spend_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE quota_spend
    SET images = images + (NEW.state <> 'refunded' OR NEW.cost_micros > 0)::int
                        - (OLD.state <> 'refunded' OR OLD.cost_micros > 0)::int,
        cost_micros = cost_micros + NEW.cost_micros - OLD.cost_micros
    WHERE day = NEW.day AND scope IN (NEW.guild_id, -1);
    RETURN NULL;
END $$;

CREATE TRIGGER quota_spend_on_update AFTER UPDATE OF state, cost_micros ON quota_entries
    FOR EACH ROW EXECUTE FUNCTION quota_spend_on_update();

ALTER TABLE quota_audit ADD COLUMN detail TEXT;

CREATE TABLE quota_model_defaults (
    guild_id BIGINT PRIMARY KEY,
    model    TEXT,
    size     TEXT
);

CREATE TABLE quota_model_access (
    guild_id BIGINT NOT NULL,
    role_id  BIGINT NOT NULL,
    models   TEXT   NOT NULL,
    max_size TEXT   NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);

ALTER TABLE generations ADD COLUMN size TEXT;
ALTER TABLE generations ADD COLUMN model_version TEXT;
ALTER TABLE generations ADD COLUMN cost_micros BIGINT;
ALTER TABLE generations ADD COLUMN credits BIGINT;
ALTER TABLE generations ADD COLUMN image_tokens BIGINT;
ALTER TABLE generations ADD COLUMN thinking_tokens BIGINT;

CREATE TABLE generation_turns (
    generation_id BIGINT PRIMARY KEY REFERENCES generations(id) ON DELETE CASCADE,
    model         TEXT   NOT NULL,
    content       TEXT   NOT NULL
);
