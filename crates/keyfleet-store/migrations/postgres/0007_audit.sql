-- Issue 11: disabling users, and the audit trail.
--
-- A disabled user cannot log in or use a token (disabling also raises the token generation).
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT false;

-- Append-only, hash-chained (keyfleet-core/src/audit.rs defines the encoding). `seq` is the chain's order,
-- 1, 2, 3, ... without gaps: appends take an advisory lock and read the last record inside the transaction of
-- the change they record, so several nodes append one after another. `details` is text, hashed exactly as
-- stored (jsonb would reorder its keys).
CREATE TABLE audit_records (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    username   TEXT COLLATE "C" NOT NULL,
    client     TEXT NOT NULL,
    request_id TEXT NOT NULL,
    action     TEXT COLLATE "C" NOT NULL,
    resource   TEXT COLLATE "C" NOT NULL,
    outcome    TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE INDEX audit_records_at ON audit_records (at);
