-- Reading jobs fast with many stored (issue 13, target 5). Twin of sqlite/0009_api_reads.sql.

-- How many jobs each (cloud, operation, creator) has: the `total` of a job list without counting its rows.
-- `version` moves with every job stored or deleted, so a node can tell whether the positions it remembered in
-- a list (`list_jobs`'s marks for deep `skip`s) still hold. Kept by the triggers below.
CREATE TABLE job_totals (
    cloud      TEXT COLLATE "C" NOT NULL,
    operation  TEXT COLLATE "C" NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL,
    n          BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    PRIMARY KEY (cloud, operation, created_by)
);
INSERT INTO job_totals (cloud, operation, created_by, n, version)
    SELECT cloud, operation, created_by, count(*), 0 FROM jobs GROUP BY cloud, operation, created_by;

CREATE FUNCTION job_totals_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_totals (cloud, operation, created_by, n, version)
            VALUES (NEW.cloud, NEW.operation, NEW.created_by, 1, 1)
            ON CONFLICT (cloud, operation, created_by)
            DO UPDATE SET n = job_totals.n + 1, version = job_totals.version + 1;
    ELSE
        UPDATE job_totals SET n = n - 1, version = version + 1
            WHERE cloud = OLD.cloud AND operation = OLD.operation AND created_by = OLD.created_by;
    END IF;
    RETURN NULL;
END $$;

-- Deferred to commit, so that a counter row is locked only while its transaction commits, not for all of a
-- transaction that creates a job of a million items.
CREATE CONSTRAINT TRIGGER jobs_counted_insert AFTER INSERT ON jobs DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION job_totals_count();
CREATE CONSTRAINT TRIGGER jobs_counted_delete AFTER DELETE ON jobs DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION job_totals_count();

-- Job lists of a cloud in creation order, ties in insertion order, either direction: each order read straight
-- from an index, which also seeks to a remembered position (`list_jobs`).
DROP INDEX jobs_by_cloud_created;
CREATE INDEX jobs_by_cloud_created ON jobs (cloud, created_at, row_no);
CREATE INDEX jobs_by_cloud_created_desc ON jobs (cloud, created_at DESC, row_no);

-- Moved, in the same transaction, by every change that can end a token's validity or change what its holder
-- may do: a password, the disabled flag or token generation of a user, a deleted user, a group membership.
-- A node's cache of verified tokens (`Services::authenticate`) holds only while the epoch it was filled under
-- is current, so every node sees such a change from its next request on. (SQLite, one node, keeps its epoch
-- in the process.)
CREATE TABLE auth_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);

CREATE FUNCTION auth_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1;
    RETURN NULL;
END $$;

CREATE TRIGGER users_auth_changed AFTER UPDATE OF password_hash, disabled, token_generation OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION auth_epoch_bump();
CREATE TRIGGER group_members_auth_changed AFTER INSERT OR DELETE ON group_members
    FOR EACH STATEMENT EXECUTE FUNCTION auth_epoch_bump();
