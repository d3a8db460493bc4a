-- Models and credits: the ledger counts credits, spend counts what Google may bill (refunded or not), each
-- generation keeps its size, real cost and the model's own answer for multi-turn edits, and servers choose
-- their default model and who may use which.

-- Every earlier entry was one image, and one credit is (at most) one image of the old default: limits, grants
-- and usage keep meaning what they meant.
ALTER TABLE quota_entries ADD COLUMN credits INTEGER NOT NULL DEFAULT 1 CHECK (credits >= 0);
-- Calls made to the image model for this request (retries and answers without a picture included).
ALTER TABLE quota_entries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
-- cost_micros now means: estimated while open; once ended, what the upstream may bill for the request (real cost
-- when answered), whether the member was charged or refunded. Refunds so far billed nothing (old rule).
UPDATE quota_entries SET cost_micros = 0 WHERE state = 'refunded';
-- Per-member decisions across every server: credits everywhere, upstream attempts.
CREATE INDEX quota_entries_user_day ON quota_entries(user_id, day);

-- Spend counts every request that holds or may have cost money: open, delivered (committed or forgiven), and
-- refunded ones the upstream may have billed (cost > 0). Dollars are what each entry holds or was billed.
DROP TRIGGER quota_spend_on_insert;
DROP TRIGGER quota_spend_on_update;

CREATE TRIGGER quota_spend_on_insert AFTER INSERT ON quota_entries
BEGIN
    INSERT INTO quota_spend (day, scope, images, cost_micros)
        VALUES (NEW.day, NEW.guild_id, (NEW.state != 'refunded' OR NEW.cost_micros > 0), NEW.cost_micros),
               (NEW.day, -1, (NEW.state != 'refunded' OR NEW.cost_micros > 0), NEW.cost_micros)
        ON CONFLICT (day, scope) DO UPDATE
        SET images = images + excluded.images, cost_micros = cost_micros + excluded.cost_micros;
END;

CREATE TRIGGER quota_spend_on_update AFTER UPDATE OF state, cost_micros ON quota_entries
BEGIN
    UPDATE quota_spend
    SET images = images + (NEW.state != 'refunded' OR NEW.cost_micros > 0)
                        - (OLD.state != 'refunded' OR OLD.cost_micros > 0),
        cost_micros = cost_micros + NEW.cost_micros - OLD.cost_micros
    WHERE day = NEW.day AND scope IN (NEW.guild_id, -1);
END;

-- Model changes are audited with the other quota changes; their value is text (model, sizes).
ALTER TABLE quota_audit ADD COLUMN detail TEXT;

-- A server's default model and size for members who choose none (NULL: the bot's).
CREATE TABLE quota_model_defaults (
    guild_id INTEGER PRIMARY KEY,
    model    TEXT,
    size     TEXT
);

-- Which models and sizes members may use. role_id 0: everyone in the server (no row: every model the bot
-- offers, every size); a role's row adds to that (the most generous wins, as with role limits).
CREATE TABLE quota_model_access (
    guild_id INTEGER NOT NULL,
    role_id  INTEGER NOT NULL,
    models   TEXT    NOT NULL,             -- JSON list of model ids, or '*' for every model the bot offers
    max_size TEXT    NOT NULL,             -- the largest size: 512, 1K, 2K or 4K
    PRIMARY KEY (guild_id, role_id)
) WITHOUT ROWID;

-- The size a generation was made at, the model that really answered (modelVersion), and its real cost.
ALTER TABLE generations ADD COLUMN size TEXT;
ALTER TABLE generations ADD COLUMN model_version TEXT;
ALTER TABLE generations ADD COLUMN cost_micros INTEGER;
ALTER TABLE generations ADD COLUMN credits INTEGER;
ALTER TABLE generations ADD COLUMN image_tokens INTEGER;
ALTER TABLE generations ADD COLUMN thinking_tokens INTEGER;

-- The model's answer exactly as received (Gemini 3: thought parts and signatures included), so an edit can send
-- it back as the model's own turn. Only signed answers under EDIT_HISTORY_MAX_BYTES are kept.
CREATE TABLE generation_turns (
    generation_id INTEGER PRIMARY KEY REFERENCES generations(id) ON DELETE CASCADE,
    model         TEXT    NOT NULL,        -- the model id the request named (signatures are that model's)
    content       TEXT    NOT NULL         -- candidates[0].content as JSON
);
