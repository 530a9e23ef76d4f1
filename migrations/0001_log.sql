-- One log per database. Singleton rows hold its identity and current checkpoint.
CREATE TABLE log_identity (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    tree_id     bigint NOT NULL CHECK (tree_id > 0),
    public_key  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The current signed tree head; the sequencer compare-and-swaps it on size.
CREATE TABLE checkpoint (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    size        bigint NOT NULL CHECK (size >= 0),
    root        bytea NOT NULL CHECK (length(root) = 32),
    note        text NOT NULL
);

-- Entries by leaf index, with the SET issued at integration.
CREATE TABLE entries (
    idx              bigint PRIMARY KEY CHECK (idx >= 0),
    leaf_hash        bytea NOT NULL UNIQUE CHECK (length(leaf_hash) = 32),
    body             bytea NOT NULL,
    integrated_time  bigint NOT NULL,
    set_signature    bytea NOT NULL
);

-- C2SP tlog-tiles, height 8: full tiles are write-once; the partial right
-- edge of each level is replaced as it grows.
CREATE TABLE tiles (
    level   smallint NOT NULL CHECK (level >= 0),
    idx     bigint NOT NULL CHECK (idx >= 0),
    width   smallint NOT NULL CHECK (width BETWEEN 1 AND 256),
    hashes  bytea NOT NULL CHECK (length(hashes) = 32 * width),
    PRIMARY KEY (level, idx)
);

-- Search index (POST /api/v1/index/retrieve): lowercased keys to entries.
CREATE TABLE index_keys (
    key        text NOT NULL,
    entry_idx  bigint NOT NULL,
    PRIMARY KEY (key, entry_idx)
);
