-- Validated entries that a process without the sequencer lease hands to the
-- one with it. The leader deletes each row as it takes it into its pool.
CREATE TABLE submissions (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL,
    body       bytea NOT NULL,
    index_keys text[] NOT NULL
);
