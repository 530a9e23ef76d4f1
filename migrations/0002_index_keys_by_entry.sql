-- Export reads each entry's search keys by entry index.
CREATE INDEX index_keys_entry_idx ON index_keys (entry_idx);
