-- PostgreSQL twin of ../0005_process_leases.sql; the comments there say what each column means.
CREATE TABLE process_leases (
    process_id  TEXT    PRIMARY KEY,
    instance_id TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    pid         BIGINT  NOT NULL,
    started_at  DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL
);
CREATE INDEX process_leases_instance ON process_leases(instance_id);

ALTER TABLE quota_entries ADD COLUMN owner TEXT;
