-- The relax lane (half price, Google's Flex tier or a Batch job): its own daily allowance in the same ledger, and
-- its jobs, which may wait for hours, stored so that a restart resumes them.

-- Which allowance an entry's credits count against: 'fast', the member's credits (DAILY_QUOTA and its limits), or
-- 'relax', the relax allowance (RELAX_DAILY_QUOTA). Every earlier entry was a fast one.
ALTER TABLE quota_entries ADD COLUMN lane TEXT NOT NULL DEFAULT 'fast' CHECK (lane IN ('fast', 'relax'));

-- One row per relax request that got a reservation (bot/relax/store.py owns it). While `ended_at` is NULL the
-- job is alive: its quota entry stays open across restarts and the next start picks it up where it was.
CREATE TABLE relax_jobs (
    id              INTEGER PRIMARY KEY,
    key             TEXT    NOT NULL UNIQUE,      -- the request's scheduler key, which its Cancel button carries
    generation_id   INTEGER NOT NULL,             -- its row in generations
    entry_id        INTEGER NOT NULL,             -- its open reservation in quota_entries
    user_id         INTEGER NOT NULL,
    guild_id        INTEGER,                      -- NULL in DMs
    channel_id      INTEGER NOT NULL,             -- where the result is posted, mentioning the member
    request_json    TEXT    NOT NULL,             -- the request, to send again if it never reached a Batch job
    model           TEXT    NOT NULL,
    -- queued (waiting for a relax slot) -> flex (Flex attempts) -> submitting (a Batch job is being created, named
    -- gib-relax-<id>: a restart looks for it before creating another) -> batch (a Batch job holds it)
    stage           TEXT    NOT NULL DEFAULT 'queued' CHECK (stage IN ('queued', 'flex', 'submitting', 'batch')),
    flex_attempts   INTEGER NOT NULL DEFAULT 0,
    batch_name      TEXT,                         -- "batches/..." once submitted
    batch_at        REAL,                         -- when it was submitted (unix seconds)
    created_at      REAL    NOT NULL,
    ended_at        REAL,
    outcome         TEXT                          -- 'image' or the error's class name
);
CREATE INDEX relax_jobs_alive ON relax_jobs(created_at) WHERE ended_at IS NULL;
