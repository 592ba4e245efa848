-- Bumped by a password change: access tokens carry the generation they were issued in, and older ones are refused.

ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;
