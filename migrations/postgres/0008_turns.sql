-- Turns the replicas take one at a time (a WABA's onboarding or removal): `holder` has it
-- until `until` (the database's clock, milliseconds) unless it renews or gives it back.
-- src/store/sql/leases.rs.
CREATE TABLE turns (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until BIGINT NOT NULL
);
