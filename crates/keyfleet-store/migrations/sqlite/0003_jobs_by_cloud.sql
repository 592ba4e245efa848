-- Job lists always filter by cloud and page by creation time (newest first): serve both from one index.
CREATE INDEX jobs_by_cloud_created ON jobs (cloud, created_at);
