-- Reading jobs fast with many stored (issue 13, target 5). Twin of postgres/0009_api_reads.sql.

-- How many jobs each (cloud, operation, creator) has: the `total` of a job list without counting its rows.
-- `version` moves with every job stored or deleted, so the server can tell whether the positions it remembered
-- in a list (`list_jobs`'s marks for deep `skip`s) still hold. Kept by the triggers below.
CREATE TABLE job_totals (
    cloud      TEXT NOT NULL,
    operation  TEXT NOT NULL,
    created_by TEXT NOT NULL,
    n          INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    PRIMARY KEY (cloud, operation, created_by)
);
INSERT INTO job_totals (cloud, operation, created_by, n, version)
    SELECT cloud, operation, created_by, count(*), 0 FROM jobs GROUP BY cloud, operation, created_by;

CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_totals (cloud, operation, created_by, n, version)
        VALUES (NEW.cloud, NEW.operation, NEW.created_by, 1, 1)
        ON CONFLICT (cloud, operation, created_by) DO UPDATE SET n = n + 1, version = version + 1;
END;
CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_totals SET n = n - 1, version = version + 1
        WHERE cloud = OLD.cloud AND operation = OLD.operation AND created_by = OLD.created_by;
END;

-- Job lists of a cloud in creation order, ties in insertion order, either direction: each order read straight
-- from an index, which also seeks to a remembered position (`list_jobs`). An index's entries end with the
-- rowid ascending, so newest first needs its own index; oldest first has `jobs_by_cloud_created`.
CREATE INDEX jobs_by_cloud_created_desc ON jobs (cloud, created_at DESC);

-- The token cache's auth epoch lives in the process (one node per SQLite file), not here.
