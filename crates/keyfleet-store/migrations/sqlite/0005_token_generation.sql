-- Bumped by a password change: access tokens carry the generation they were issued in, and older ones are refused.

ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
