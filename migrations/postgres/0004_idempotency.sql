-- Idempotency records, shared by every replica: one row per RPC and request_id. The call
-- that inserts it (its `claim`) sends the write, renewing `lease_until` while it runs; the
-- others wait for `outcome` (JSON). A definite failure is kept `replaceable`: a later call
-- under the key is a new attempt. `fingerprint`: an HMAC of the request under a key derived
-- from the store key, never the request (it holds PINs). src/store/sql/idempotency.rs.
CREATE TABLE idempotency (
    rpc TEXT NOT NULL,
    request_id TEXT COLLATE "C" NOT NULL,
    fingerprint BYTEA NOT NULL,
    claim TEXT NOT NULL,
    outcome TEXT,
    replaceable INTEGER NOT NULL DEFAULT 0,
    lease_until BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (rpc, request_id)
);
