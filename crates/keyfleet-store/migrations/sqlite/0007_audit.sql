-- Issue 11: disabling users, and the audit trail.
--
-- A disabled user cannot log in or use a token (disabling also raises the token generation).
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;

-- Append-only, hash-chained (keyfleet-core/src/audit.rs defines the encoding). `seq` is the chain's order,
-- 1, 2, 3, ... without gaps: appends read the last record inside the transaction of the change they record
-- (SQLite has one writer). `details` is text, hashed exactly as stored.
CREATE TABLE audit_records (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    username   TEXT NOT NULL,
    client     TEXT NOT NULL,
    request_id TEXT NOT NULL,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE INDEX audit_records_at ON audit_records (at);
