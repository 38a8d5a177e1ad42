-- Idempotency records say which store key signed their fingerprint (`fingerprint_key`, a
-- key id as tokens carry: a replica that lacks the key says so instead of calling the
-- request another), and when their outcome was kept (`finished_at`, by the database's
-- clock: a replayed "retry after" counts from then). Both NULL in records kept before.
ALTER TABLE idempotency ADD COLUMN fingerprint_key TEXT;
ALTER TABLE idempotency ADD COLUMN finished_at INTEGER;
