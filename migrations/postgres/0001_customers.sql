-- Customers: one row per customer WABA, its business token encrypted with the WABA id as
-- associated data (src/store/crypto.rs). Times are milliseconds since the Unix epoch, by
-- the database's clock, so replicas compare one clock. `version` guards compare-and-set
-- (src/store/sql/mod.rs). Ids sort bytewise (COLLATE "C"), as SQLite and the memory
-- store sort them, whatever the database's locale: pages are the same on every backend.
-- Kept in step with ../sqlite/0001_customers.sql.
CREATE TABLE customers (
    waba_id TEXT COLLATE "C" PRIMARY KEY,
    business_id TEXT,
    token_ciphertext BYTEA NOT NULL,
    token_nonce BYTEA NOT NULL,
    token_key_id TEXT NOT NULL,
    token_state TEXT NOT NULL CHECK (token_state IN ('unchecked', 'active', 'reauth_required')),
    token_expires_at BIGINT,
    webhooks_subscribed BOOLEAN NOT NULL DEFAULT FALSE,
    -- bit i set: onboarding step i done (src/store/types.rs, step_bit)
    steps_done BIGINT NOT NULL DEFAULT 0,
    failed_step TEXT,
    failure_code INTEGER,
    failure_message TEXT,
    onboarded_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);

-- Which WABA a phone number belongs to, as last seen. Not tied to `customers`: numbers of
-- WABAs served with the partner token are indexed too, and a removed customer's numbers
-- still belong to its WABA.
CREATE TABLE phone_numbers (
    phone_number_id TEXT COLLATE "C" PRIMARY KEY,
    waba_id TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX phone_numbers_by_waba ON phone_numbers (waba_id);
