-- The ledger of Meta's per-number limits, shared by every replica of the store (with
-- SQLite, one replica; kept across its restarts). One row per number and limit holds
-- Meta's block and is the row a spending transaction locks; one row per attempt counted,
-- by the database's clock (src/store/sql/ledger.rs). Kept in step with ../postgres/.
CREATE TABLE ledger_numbers (
    phone_number_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    blocked_until INTEGER,
    PRIMARY KEY (phone_number_id, kind)
) STRICT;

CREATE TABLE ledger_attempts (
    attempt_id TEXT PRIMARY KEY NOT NULL,
    phone_number_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL
) STRICT;

CREATE INDEX ledger_attempts_by_number ON ledger_attempts (phone_number_id, kind, at);
