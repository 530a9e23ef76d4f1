-- Time-sharded v1 logs (issue 14, item 5): `tlog log rotate` freezes the
-- active v1 log and registers a new one. When a log was frozen is the end of
-- its key's validity in the trust configuration (`validFor.end`); NULL while
-- the log is active.
ALTER TABLE logs ADD COLUMN frozen_at timestamptz;
