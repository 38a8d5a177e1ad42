-- The ledger of Meta's per-number limits, shared by every replica. One row per number and
-- limit holds Meta's block and is the row a spending transaction locks (FOR UPDATE), so
-- replicas spending on one number take turns; one row per attempt counted, by the
-- database's clock (src/store/sql/ledger.rs). Kept in step with ../sqlite/.
CREATE TABLE ledger_numbers (
    phone_number_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    blocked_until BIGINT,
    PRIMARY KEY (phone_number_id, kind)
);

CREATE TABLE ledger_attempts (
    attempt_id TEXT PRIMARY KEY,
    phone_number_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL
);

CREATE INDEX ledger_attempts_by_number ON ledger_attempts (phone_number_id, kind, at);
