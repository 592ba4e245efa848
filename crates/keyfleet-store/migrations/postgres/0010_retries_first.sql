-- Items that were tried before are claimed before fresh ones once due (issue 13, pacing target). Twin of
-- sqlite/0010_retries_first.sql.
--
-- Claims take due items oldest first (job_items_pending). A retry is due after its backoff, which is later
-- than every fresh item of its job, so it used to wait behind all of them: a key that met a 500 early was
-- tried again only at the end of the job, where its further retries had nothing to overlap with and drew
-- out the job's tail. The claim now asks this index first: the due items that were attempted before
-- (retries, and items whose lease ran out), few at any time.
CREATE INDEX job_items_retries ON job_items (partition, not_before, row_no) WHERE status = 'pending' AND attempts > 0;
