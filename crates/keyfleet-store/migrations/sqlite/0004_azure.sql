-- Azure: connections, vaults, synced keys, cloud key backups; Azure sync jobs.

CREATE TABLE azure_connections (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL UNIQUE,
    description               TEXT NOT NULL DEFAULT '',
    client_id                 TEXT NOT NULL,
    tenant_id                 TEXT NOT NULL,
    secret_enc                BLOB NOT NULL,
    cloud_name                TEXT NOT NULL,
    active_directory_endpoint TEXT,
    vault_resource_url        TEXT,
    key_vault_dns_suffix      TEXT,
    vault_endpoint_url        TEXT,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);

CREATE TABLE azure_vaults (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    azure_vault_id  TEXT NOT NULL,
    connection_id   TEXT NOT NULL REFERENCES azure_connections(id),
    subscription_id TEXT NOT NULL,
    location        TEXT NOT NULL,
    vault_type      TEXT NOT NULL,
    vault_uri       TEXT NOT NULL,
    properties      TEXT NOT NULL,
    tags            TEXT NOT NULL,
    synced_at       INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- `name` is the key's name as Key Vault spells it (lists sort by it); `name_lc` is that name in lower case:
-- Key Vault names are case-insensitive, so keys are matched (and unique) by it.
CREATE TABLE azure_keys (
    id         TEXT PRIMARY KEY,
    vault_id   TEXT NOT NULL REFERENCES azure_vaults(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    name_lc    TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    material   TEXT NOT NULL,
    gone       INTEGER NOT NULL DEFAULT 0,
    synced_at  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (vault_id, name_lc)
);

-- The blob is Key Vault's backup, encrypted under the master key; lists never read it.
CREATE TABLE azure_key_backups (
    id          TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES azure_keys(id) ON DELETE CASCADE,
    vault_id    TEXT NOT NULL REFERENCES azure_vaults(id) ON DELETE CASCADE,
    key_name    TEXT NOT NULL,
    key_version TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    size_bytes  INTEGER NOT NULL,
    blob_enc    BLOB NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX azure_key_backups_by_key ON azure_key_backups (key_id, created_at);
CREATE INDEX azure_key_backups_by_vault ON azure_key_backups (vault_id, created_at);
-- Lists page by creation time and `delete-key-backups` selects by a creation-time window, oldest first.
CREATE INDEX azure_key_backups_by_created ON azure_key_backups (created_at);

ALTER TABLE sync_jobs ADD COLUMN cloud TEXT NOT NULL DEFAULT 'aws';
ALTER TABLE sync_jobs ADD COLUMN vaults TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sync_jobs ADD COLUMN take_cloud_key_backup INTEGER NOT NULL DEFAULT 0;
