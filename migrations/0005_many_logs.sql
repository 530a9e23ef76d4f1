-- Many logs per database (issue 14, item 1). Each log has an ID, an API
-- version (v1: Rekor v1 with SETs; v2: Rekor v2 / C2SP tlog-tiles), a state
-- (active, or frozen: read-only, as a rotated shard) and an origin; its key
-- and tree ID stay in log_identity. Every table is keyed by log.
--
-- A database made before this migration holds one v1 log: its rows become
-- log 1, which is also the log a store handle opens by default. So
-- existing single-log databases keep working unchanged.
--
-- Primary keys are rebuilt, which rewrites their indexes once: on a large
-- log this migration takes minutes and holds its locks meanwhile.

CREATE TABLE logs (
    id           bigint PRIMARY KEY CHECK (id > 0),
    api_version  text NOT NULL CHECK (api_version IN ('v1', 'v2')),
    state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'frozen')),
    -- The checkpoint origin; NULL for a v1 log, whose origin is derived
    -- from the configured hostname and its tree ID (`<host> - <treeID>`).
    origin       text UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO logs (id, api_version) VALUES (1, 'v1');

ALTER TABLE log_identity ADD COLUMN log_id bigint NOT NULL DEFAULT 1 REFERENCES logs (id);
ALTER TABLE log_identity DROP CONSTRAINT log_identity_pkey;
ALTER TABLE log_identity DROP COLUMN singleton;
ALTER TABLE log_identity ADD PRIMARY KEY (log_id);

ALTER TABLE checkpoint ADD COLUMN log_id bigint NOT NULL DEFAULT 1 REFERENCES logs (id);
ALTER TABLE checkpoint DROP CONSTRAINT checkpoint_pkey;
ALTER TABLE checkpoint DROP COLUMN singleton;
ALTER TABLE checkpoint ADD PRIMARY KEY (log_id);

-- No foreign keys on the bulk tables: their rows are inserted in batches of
-- thousands, and a log's rows are only ever written under its checkpoint
-- row's lock, which the foreign key above already ties to a log.
ALTER TABLE entries ADD COLUMN log_id bigint NOT NULL DEFAULT 1;
ALTER TABLE entries DROP CONSTRAINT entries_pkey;
ALTER TABLE entries DROP CONSTRAINT entries_leaf_hash_key;
ALTER TABLE entries ADD PRIMARY KEY (log_id, idx);
ALTER TABLE entries ADD CONSTRAINT entries_leaf_hash_key UNIQUE (log_id, leaf_hash);

ALTER TABLE tiles ADD COLUMN log_id bigint NOT NULL DEFAULT 1;
ALTER TABLE tiles DROP CONSTRAINT tiles_pkey;
ALTER TABLE tiles ADD PRIMARY KEY (log_id, level, idx);

ALTER TABLE index_keys ADD COLUMN log_id bigint NOT NULL DEFAULT 1;
ALTER TABLE index_keys DROP CONSTRAINT index_keys_pkey;
ALTER TABLE index_keys ADD PRIMARY KEY (log_id, key, entry_idx);
DROP INDEX index_keys_entry_idx;
CREATE INDEX index_keys_entry_idx ON index_keys (log_id, entry_idx);

-- One sequencer lease per log: each log may be sequenced by another process.
ALTER TABLE sequencer_lease ADD COLUMN log_id bigint NOT NULL DEFAULT 1 REFERENCES logs (id);
ALTER TABLE sequencer_lease DROP CONSTRAINT sequencer_lease_pkey;
ALTER TABLE sequencer_lease DROP COLUMN id;
ALTER TABLE sequencer_lease ADD PRIMARY KEY (log_id);

ALTER TABLE submissions ADD COLUMN log_id bigint NOT NULL DEFAULT 1;
CREATE INDEX submissions_log_id ON submissions (log_id, id);
