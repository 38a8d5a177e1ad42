-- Who polls what, across the replicas of one store (src/store/sql/leases.rs). Targets (a
-- WABA, a lone number) hash into a fixed number of shards; a replica polls the targets of
-- the shards it leases. The rows here grow with replicas and shards, not with WABAs:
-- ownership costs the same statements at 10 or 10,000 WABAs.

-- Every live replica, as of its last lease renewal (the database's clock, milliseconds).
CREATE TABLE fleet_replicas (
    replica TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);

-- One lease per shard: `owner` polls its targets until `expires_at`, unless it renews.
CREATE TABLE fleet_shards (
    shard INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Targets some replica has subscribers for, so that the shard's owner polls them: each
-- replica refreshes its own in one statement, and a lapsed row means nobody watches.
CREATE TABLE fleet_watched (
    target TEXT PRIMARY KEY,
    shard INTEGER NOT NULL,
    until BIGINT NOT NULL
);
CREATE INDEX fleet_watched_shard ON fleet_watched (shard);

-- The owner's latest observation of each target (JSON), which the NOTIFY only names: a
-- replica that joins later, or missed a notification, reads it here.
CREATE TABLE fleet_observations (
    target TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
