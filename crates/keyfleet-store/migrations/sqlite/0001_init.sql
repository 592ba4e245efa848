-- keyfleet schema, SQLite dialect. Timestamps are integer microseconds since the Unix epoch (UTC);
-- ids are UUID text; lists are JSON text. Forward-only: change the schema with a new numbered file.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    email         TEXT NOT NULL DEFAULT '',
    nickname      TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_login    INTEGER,
    logins_count  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE groups (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_name TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_name, user_id)
);

CREATE TABLE refresh_tokens (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE aws_connections (
    id                      TEXT PRIMARY KEY,
    name                    TEXT NOT NULL UNIQUE,
    description             TEXT NOT NULL DEFAULT '',
    access_key_id           TEXT NOT NULL,
    secret_enc              BLOB NOT NULL,
    aws_region              TEXT NOT NULL,
    assume_role_arn         TEXT,
    assume_role_external_id TEXT,
    endpoint_url            TEXT,
    cloud_name              TEXT NOT NULL,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);

CREATE TABLE aws_kms (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    account_id    TEXT NOT NULL,
    connection_id TEXT NOT NULL REFERENCES aws_connections(id),
    regions       TEXT NOT NULL,
    quotas        TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE acls (
    resource_kind  TEXT NOT NULL,
    resource_id    TEXT NOT NULL,
    principal_kind TEXT NOT NULL CHECK (principal_kind IN ('user', 'group')),
    principal      TEXT NOT NULL,
    actions        TEXT NOT NULL,
    PRIMARY KEY (resource_kind, resource_id, principal_kind, principal)
);

CREATE TABLE aws_keys (
    id            TEXT PRIMARY KEY,
    kms_id        TEXT NOT NULL REFERENCES aws_kms(id) ON DELETE CASCADE,
    region        TEXT NOT NULL,
    aws_key_id    TEXT NOT NULL,
    arn           TEXT NOT NULL,
    key_state     TEXT NOT NULL,
    enabled       INTEGER NOT NULL,
    material      TEXT NOT NULL,
    gone          INTEGER NOT NULL DEFAULT 0,
    synced_at     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (kms_id, region, aws_key_id)
);
CREATE INDEX aws_keys_by_region ON aws_keys (kms_id, region);

CREATE TABLE aws_templates (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    kms_id     TEXT REFERENCES aws_kms(id) ON DELETE SET NULL,
    account_id TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    cloud        TEXT NOT NULL,
    operation    TEXT NOT NULL,
    params       TEXT NOT NULL,
    status       TEXT NOT NULL,
    abort        INTEGER NOT NULL DEFAULT 0,
    created_by   TEXT NOT NULL,
    total        INTEGER NOT NULL,
    succeeded    INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    skipped      INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    completed_at INTEGER
);
CREATE INDEX jobs_by_created ON jobs (created_at);
CREATE INDEX jobs_by_status ON jobs (status);

-- One row per key of a job. Written before each cloud call (status 'running', attempts+1, lease), so a
-- crash leaves evidence of what may have been sent.
CREATE TABLE job_items (
    job_id             TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq                INTEGER NOT NULL,
    key_id             TEXT NOT NULL,
    -- '<account>/<region>': the rate-limit partition, driven as a unit
    partition          TEXT NOT NULL,
    status             TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    first_attempt_at   INTEGER,
    not_before         INTEGER NOT NULL DEFAULT 0,
    detail             TEXT,
    last_error_code    TEXT,
    last_error_message TEXT,
    state_before       TEXT,
    state_after        TEXT,
    lease_owner        TEXT,
    lease_expires_at   INTEGER,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX job_items_pending ON job_items (status, partition, not_before);
CREATE INDEX job_items_by_status ON job_items (job_id, status);
CREATE INDEX job_items_leases ON job_items (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE sync_jobs (
    id               TEXT PRIMARY KEY,
    kms              TEXT NOT NULL,
    regions          TEXT NOT NULL,
    synchronize_all  INTEGER NOT NULL,
    status           TEXT NOT NULL,
    abort            INTEGER NOT NULL DEFAULT 0,
    detailed_status  TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    completed_at     INTEGER
);
CREATE INDEX sync_jobs_by_created ON sync_jobs (created_at);
