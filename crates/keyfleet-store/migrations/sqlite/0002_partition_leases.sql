-- One node at a time drives a rate-limit partition ('<account>/<region>'), so the cloud's quota holds for the
-- cluster as a whole. The row is a lease: renewed by its owner's heartbeat, taken over once it expires.
CREATE TABLE partition_leases (
    partition  TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
