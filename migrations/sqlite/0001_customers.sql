-- Customers: one row per customer WABA, its business token encrypted with the WABA id as
-- associated data (src/store/crypto.rs). Times are milliseconds since the Unix epoch, by
-- the database's clock. `version` guards compare-and-set (src/store/sql/mod.rs).
-- Kept in step with ../postgres/0001_customers.sql.
CREATE TABLE customers (
    waba_id TEXT PRIMARY KEY NOT NULL,
    business_id TEXT,
    token_ciphertext BLOB NOT NULL,
    token_nonce BLOB NOT NULL,
    token_key_id TEXT NOT NULL,
    token_state TEXT NOT NULL CHECK (token_state IN ('unchecked', 'active', 'reauth_required')),
    token_expires_at INTEGER,
    webhooks_subscribed INTEGER NOT NULL DEFAULT 0 CHECK (webhooks_subscribed IN (0, 1)),
    -- bit i set: onboarding step i done (src/store/types.rs, step_bit)
    steps_done INTEGER NOT NULL DEFAULT 0,
    failed_step TEXT,
    failure_code INTEGER,
    failure_message TEXT,
    onboarded_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
) STRICT;

-- Which WABA a phone number belongs to, as last seen. Not tied to `customers`: numbers of
-- WABAs served with the partner token are indexed too, and a removed customer's numbers
-- still belong to its WABA.
CREATE TABLE phone_numbers (
    phone_number_id TEXT PRIMARY KEY NOT NULL,
    waba_id TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX phone_numbers_by_waba ON phone_numbers (waba_id);
