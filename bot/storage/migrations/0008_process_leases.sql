-- Owner leases. Every process that can hold quota reservations registers here under a random process id and
-- renews its lease while it lives; each reservation records the process that made it. Recovery (at start, and by
-- a periodic sweep in every live process) refunds only the open entries no live process answers for, so a second
-- process starting beside the first, as in an overlapping deploy, leaves the first one's requests alone.
CREATE TABLE process_leases (
    process_id  TEXT    PRIMARY KEY,           -- one per start of a process
    instance_id TEXT    NOT NULL,              -- INSTANCE_ID: the same across restarts of one deployment slot
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  REAL    NOT NULL,              -- unix seconds
    lease_until REAL    NOT NULL               -- alive until then unless renewed
);
CREATE INDEX process_leases_instance ON process_leases(instance_id);

-- The process_id of the process that made the reservation; NULL for entries written before owners were recorded.
ALTER TABLE quota_entries ADD COLUMN owner TEXT;
