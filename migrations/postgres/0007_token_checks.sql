-- When some replica last asked Meta about the customer's token (debug_token), by the
-- database's clock: each daily check claims a customer here first, so that of several
-- replicas one checks it (src/customers/mod.rs, `check_tokens`).
ALTER TABLE customers ADD COLUMN token_checked_at BIGINT;
