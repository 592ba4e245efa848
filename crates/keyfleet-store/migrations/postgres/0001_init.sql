-- keyfleet schema, PostgreSQL dialect. Column for column the same as migrations/sqlite/0001_init.sql, so
-- records convert the same way on both backends: timestamps are BIGINT microseconds since the Unix epoch
-- (UTC), ids are UUID text. Where PostgreSQL has a better type it is used: jsonb for JSON, boolean for
-- flags, bytea for ciphertext.
--
-- Two things SQLite gives implicitly are spelled out, so that lists page and sort identically:
--   * `row_no`, an identity column, is the insertion order (SQLite's rowid): the tie-breaker of every
--     sorted list, the order a selector job's items get, and the "oldest first" of claims.
--   * Text that lists sort, group or compare by is COLLATE "C" (byte order, SQLite's BINARY), whatever
--     locale the database was created with.
-- Forward-only: change the schema with a new numbered file, under the same name as its SQLite twin.

CREATE TABLE meta (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    email         TEXT NOT NULL DEFAULT '',
    nickname      TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_login    BIGINT,
    logins_count  BIGINT NOT NULL DEFAULT 0,
    row_no        BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE groups (
    name        TEXT COLLATE "C" PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    row_no      BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE group_members (
    group_name TEXT COLLATE "C" NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_name, user_id)
);

CREATE TABLE refresh_tokens (
    id         TEXT COLLATE "C" PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE aws_connections (
    id                      TEXT COLLATE "C" PRIMARY KEY,
    name                    TEXT COLLATE "C" NOT NULL UNIQUE,
    description             TEXT NOT NULL DEFAULT '',
    access_key_id           TEXT NOT NULL,
    secret_enc              BYTEA NOT NULL,
    aws_region              TEXT NOT NULL,
    assume_role_arn         TEXT,
    assume_role_external_id TEXT,
    endpoint_url            TEXT,
    cloud_name              TEXT NOT NULL,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    row_no                  BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE aws_kms (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    account_id    TEXT COLLATE "C" NOT NULL,
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES aws_connections(id),
    regions       JSONB NOT NULL,
    quotas        JSONB NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    row_no        BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE acls (
    resource_kind  TEXT COLLATE "C" NOT NULL,
    resource_id    TEXT COLLATE "C" NOT NULL,
    principal_kind TEXT COLLATE "C" NOT NULL CHECK (principal_kind IN ('user', 'group')),
    principal      TEXT COLLATE "C" NOT NULL,
    actions        JSONB NOT NULL,
    PRIMARY KEY (resource_kind, resource_id, principal_kind, principal)
);

CREATE TABLE aws_keys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    kms_id        TEXT COLLATE "C" NOT NULL REFERENCES aws_kms(id) ON DELETE CASCADE,
    region        TEXT COLLATE "C" NOT NULL,
    aws_key_id    TEXT COLLATE "C" NOT NULL,
    arn           TEXT COLLATE "C" NOT NULL,
    key_state     TEXT COLLATE "C" NOT NULL,
    enabled       BOOLEAN NOT NULL,
    material      JSONB NOT NULL,
    gone          BOOLEAN NOT NULL DEFAULT false,
    synced_at     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    row_no        BIGINT GENERATED ALWAYS AS IDENTITY,
    UNIQUE (kms_id, region, aws_key_id)
);
CREATE INDEX aws_keys_by_region ON aws_keys (kms_id, region);

CREATE TABLE aws_templates (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    kms_id     TEXT COLLATE "C" REFERENCES aws_kms(id) ON DELETE SET NULL,
    account_id TEXT NOT NULL,
    body       JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    row_no     BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE jobs (
    id           TEXT COLLATE "C" PRIMARY KEY,
    cloud        TEXT COLLATE "C" NOT NULL,
    operation    TEXT COLLATE "C" NOT NULL,
    params       JSONB NOT NULL,
    status       TEXT COLLATE "C" NOT NULL,
    abort        BOOLEAN NOT NULL DEFAULT false,
    created_by   TEXT COLLATE "C" NOT NULL,
    total        BIGINT NOT NULL,
    succeeded    BIGINT NOT NULL DEFAULT 0,
    failed       BIGINT NOT NULL DEFAULT 0,
    skipped      BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    completed_at BIGINT,
    row_no       BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX jobs_by_created ON jobs (created_at);
CREATE INDEX jobs_by_status ON jobs (status);

-- One row per key of a job. Written before each cloud call (status 'running', attempts+1, lease), so a
-- crash leaves evidence of what may have been sent.
CREATE TABLE job_items (
    job_id             TEXT COLLATE "C" NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq                BIGINT NOT NULL,
    key_id             TEXT COLLATE "C" NOT NULL,
    -- '<account>/<region>': the rate-limit partition, driven as a unit
    partition          TEXT COLLATE "C" NOT NULL,
    status             TEXT COLLATE "C" NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0,
    first_attempt_at   BIGINT,
    not_before         BIGINT NOT NULL DEFAULT 0,
    detail             TEXT,
    last_error_code    TEXT,
    last_error_message TEXT,
    state_before       TEXT,
    state_after        TEXT,
    lease_owner        TEXT COLLATE "C",
    lease_expires_at   BIGINT,
    updated_at         BIGINT NOT NULL,
    row_no             BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (job_id, seq)
);
-- The claim path: pending items of one partition, due first, then oldest. SQLite's index carries the rowid
-- implicitly; here row_no is explicit so that `ORDER BY not_before, row_no LIMIT n` reads the index in order
-- instead of sorting a million pending rows on every claim.
CREATE INDEX job_items_pending ON job_items (status, partition, not_before, row_no);
CREATE INDEX job_items_by_status ON job_items (job_id, status);
CREATE INDEX job_items_leases ON job_items (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE sync_jobs (
    id               TEXT COLLATE "C" PRIMARY KEY,
    kms              JSONB NOT NULL,
    regions          JSONB NOT NULL,
    synchronize_all  BOOLEAN NOT NULL,
    status           TEXT COLLATE "C" NOT NULL,
    abort            BOOLEAN NOT NULL DEFAULT false,
    detailed_status  JSONB NOT NULL,
    created_by       TEXT COLLATE "C" NOT NULL,
    lease_owner      TEXT COLLATE "C",
    lease_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    completed_at     BIGINT,
    row_no           BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX sync_jobs_by_created ON sync_jobs (created_at);
