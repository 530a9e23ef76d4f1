-- The sequencer's lease: one row. `epoch` moves forward every time another
-- process takes the lease; a commit checks it in its own transaction (fencing).
CREATE TABLE sequencer_lease (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    epoch      bigint NOT NULL,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);
INSERT INTO sequencer_lease (epoch, holder, expires_at) VALUES (0, '', '-infinity');
