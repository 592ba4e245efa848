-- Azure: connections, vaults, synced keys, cloud key backups; Azure sync jobs. Twin of sqlite/0004_azure.sql.

CREATE TABLE azure_connections (
    id                        TEXT COLLATE "C" PRIMARY KEY,
    name                      TEXT COLLATE "C" NOT NULL UNIQUE,
    description               TEXT NOT NULL DEFAULT '',
    client_id                 TEXT NOT NULL,
    tenant_id                 TEXT NOT NULL,
    secret_enc                BYTEA NOT NULL,
    cloud_name                TEXT NOT NULL,
    active_directory_endpoint TEXT,
    vault_resource_url        TEXT,
    key_vault_dns_suffix      TEXT,
    vault_endpoint_url        TEXT,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    row_no                    BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE azure_vaults (
    id              TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT COLLATE "C" NOT NULL UNIQUE,
    azure_vault_id  TEXT NOT NULL,
    connection_id   TEXT COLLATE "C" NOT NULL REFERENCES azure_connections(id),
    subscription_id TEXT COLLATE "C" NOT NULL,
    location        TEXT NOT NULL,
    vault_type      TEXT NOT NULL,
    vault_uri       TEXT NOT NULL,
    properties      JSONB NOT NULL,
    tags            JSONB NOT NULL,
    synced_at       BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    row_no          BIGINT GENERATED ALWAYS AS IDENTITY
);

-- `name` is the key's name as Key Vault spells it (lists sort by it); `name_lc` is that name in lower case:
-- Key Vault names are case-insensitive, so keys are matched (and unique) by it.
CREATE TABLE azure_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    vault_id   TEXT COLLATE "C" NOT NULL REFERENCES azure_vaults(id) ON DELETE CASCADE,
    name       TEXT COLLATE "C" NOT NULL,
    name_lc    TEXT COLLATE "C" NOT NULL,
    enabled    BOOLEAN NOT NULL,
    material   JSONB NOT NULL,
    gone       BOOLEAN NOT NULL DEFAULT FALSE,
    synced_at  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    row_no     BIGINT GENERATED ALWAYS AS IDENTITY,
    UNIQUE (vault_id, name_lc)
);

-- The blob is Key Vault's backup, encrypted under the master key; lists never read it.
CREATE TABLE azure_key_backups (
    id          TEXT COLLATE "C" PRIMARY KEY,
    key_id      TEXT COLLATE "C" NOT NULL REFERENCES azure_keys(id) ON DELETE CASCADE,
    vault_id    TEXT COLLATE "C" NOT NULL REFERENCES azure_vaults(id) ON DELETE CASCADE,
    key_name    TEXT NOT NULL,
    key_version TEXT NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    size_bytes  BIGINT NOT NULL,
    blob_enc    BYTEA NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    row_no      BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX azure_key_backups_by_key ON azure_key_backups (key_id, created_at);
CREATE INDEX azure_key_backups_by_vault ON azure_key_backups (vault_id, created_at);
-- Lists page by creation time and `delete-key-backups` selects by a creation-time window, oldest first.
CREATE INDEX azure_key_backups_by_created ON azure_key_backups (created_at);

-- `cloud` is compared by the sync-job lists: byte order, like every such column.
ALTER TABLE sync_jobs ADD COLUMN cloud TEXT COLLATE "C" NOT NULL DEFAULT 'aws';
ALTER TABLE sync_jobs ADD COLUMN vaults JSONB NOT NULL DEFAULT '[]';
ALTER TABLE sync_jobs ADD COLUMN take_cloud_key_backup BOOLEAN NOT NULL DEFAULT FALSE;
